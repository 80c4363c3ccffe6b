"""Test support for the tenant isolation tests: builds one object of every tenant-owned model for an organization, generically.

Models are discovered from the app registry; each field gets a plausible value by type and every relation
to another tenant-owned model is filled with an object of the *same* organization (built first). An app
can take over for a model it knows better by defining ``isolation_factory(model, organization)`` in
``<app>/tests/factories.py`` that returns a saved instance (or ``None`` to fall back to the generic one).
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import uuid
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.forms.models import model_to_dict
from django.utils import timezone

from accounts.admin_base import tenant_q
from accounts.models import Membership, Organization, User

PROJECT_APPS = ("accounts", "webhooks", "knowledge", "chatbots", "analytics")
_counter = itertools.count(1)


def tenant_models() -> list[type[models.Model]]:
    """Every concrete model of the project's apps that belongs to an organization."""
    found = []
    for model in apps.get_models():
        if model._meta.app_label not in PROJECT_APPS or model._meta.proxy or model._meta.abstract:
            continue
        if model in (Organization, User, Membership):
            continue  # created by the organization factory itself
        if tenant_q(model, None) is not None:
            found.append(model)
    return found


def _app_factory(model: type[models.Model]) -> Any:
    try:
        module = importlib.import_module(f"{model._meta.app_config.name}.tests.factories")
    except ModuleNotFoundError:
        return None
    return getattr(module, "isolation_factory", None)


def _choice(field: models.Field) -> Any:
    return field.choices[0][0] if field.choices else None


def _value(field: models.Field, marker: str) -> Any:
    if field.choices:
        first = field.choices[0][1]
        return field.choices[0][0] if not isinstance(first, list | tuple) else first[0][0]
    n = next(_counter)
    text = f"{marker}-{field.name}-{n}"
    if isinstance(field, models.EmailField):
        return f"{marker}-{n}@example.com"
    if isinstance(field, models.URLField):
        return f"https://{marker}.example.com/{n}"
    if isinstance(field, models.SlugField):
        return text[: field.max_length].lower()
    if isinstance(field, models.CharField | models.TextField):
        return text[: field.max_length] if field.max_length else text
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.DecimalField):
        return Decimal("0")
    if isinstance(field, models.FloatField):
        return 0.5
    if isinstance(field, models.IntegerField | models.BigIntegerField | models.SmallIntegerField):
        return 1
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return dt.date.today()
    if isinstance(field, models.DurationField):
        return dt.timedelta(seconds=1)
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.JSONField):
        return {}
    if isinstance(field, ArrayField):
        return []
    if isinstance(field, models.GenericIPAddressField):
        return "127.0.0.1"
    if isinstance(field, models.BinaryField):
        return b"x"
    if isinstance(field, models.FileField):
        return f"isolation/{marker}-{n}.txt"
    dimensions = getattr(field, "dimensions", None)
    if dimensions:  # pgvector
        return [0.1] * dimensions
    return None


class TenantObjects:
    """One saved object per tenant-owned model for ``organization`` (``objects[model]``)."""

    def __init__(self, organization: Organization, owner: User) -> None:
        self.organization = organization
        self.owner = owner
        self.marker = f"leak{organization.slug.replace('-', '')}"
        self.objects: dict[type[models.Model], models.Model] = {}
        self.errors: dict[type[models.Model], str] = {}

    def build_all(self) -> TenantObjects:
        for model in tenant_models():
            self.get(model)
        return self

    def get(self, model: type[models.Model]) -> models.Model | None:
        if model in self.objects:
            return self.objects[model]
        if model is Organization:
            return self.organization
        if model is User:
            return self.owner
        if model in self.errors:
            return None
        try:
            obj = self._build(model)
        except Exception as exc:  # a model the generic builder cannot fill: reported by the test
            self.errors[model] = f"{type(exc).__name__}: {exc}"
            return None
        self.objects[model] = obj
        return obj

    def _build(self, model: type[models.Model]) -> models.Model:
        factory = _app_factory(model)
        if factory is not None:
            obj = factory(model, self.organization)
            if obj is not None:
                return obj
        values: dict[str, Any] = {}
        for field in model._meta.concrete_fields:
            if field.primary_key and (field.has_default() or isinstance(field, models.AutoField)):
                continue
            if field.is_relation:
                related = field.related_model
                if related is Organization or related is User or tenant_q(related, None) is not None:
                    target = self.get(related)
                    if target is None:
                        if field.null:
                            continue
                        raise LookupError(
                            f"cannot build {related.__name__} for {model.__name__}.{field.name}"
                        )
                    values[field.name] = target
                elif not field.null:
                    existing = related._default_manager.first()
                    if existing is None:
                        raise LookupError(f"no {related.__name__} to point {model.__name__}.{field.name} at")
                    values[field.name] = existing
                continue
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                continue
            # Defaults are kept, except editable text, which gets a marker so leaks of it are visible.
            if field.has_default() and (
                not field.editable or not isinstance(field, models.CharField | models.TextField)
            ):
                continue
            value = _value(field, self.marker)
            if value is None:
                if field.null or field.has_default():
                    continue
                raise TypeError(f"no value for {model.__name__}.{field.name} ({type(field).__name__})")
            values[field.name] = value
        obj = model(**values)
        obj.save()
        return obj


def snapshot(objects: TenantObjects) -> dict[str, Any]:
    """A comparable picture of every object (to prove that nothing was changed or deleted)."""
    state: dict[str, Any] = {}
    for model, obj in objects.objects.items():
        fresh = model._default_manager.filter(pk=obj.pk).first()
        state[model._meta.label] = (
            None if fresh is None else repr(sorted(model_to_dict(fresh).items(), key=str))
        )
    return state


# --- "nothing left": the privacy tests' generic scan ------------------------------------------------------
def data_models() -> list[type[models.Model]]:
    """Every model that holds organization data: the isolation walk's tenant models plus the models the
    organization deletion discovers (also those with a plain ``organization_id`` column)."""
    from accounts.deletion import organization_data_models

    found = dict.fromkeys(tenant_models())
    for model, _lookup in organization_data_models():
        found[model] = None
    return list(found)


def database_traces(needles: list[str]) -> list[str]:
    """``model pk: needle`` for every row of every organization-data model that contains a needle."""
    lowered = [n.lower() for n in needles if n]
    hits = []
    for model in data_models():
        for row in model._default_manager.all().values():
            text = " ".join(str(v) for v in row.values()).lower()
            hits.extend(f"{model._meta.label} {row.get('id')}: {n}" for n in lowered if n in text)
    return hits


def media_traces(needles: list[str], root: Any) -> list[str]:
    """Files under the media root (uploads, exports; zip archives unpacked) that contain a needle."""
    import io
    import zipfile
    from pathlib import Path

    lowered = [n.lower().encode() for n in needles if n]
    hits = []
    for path in Path(root).rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = b"".join(archive.read(name) for name in archive.namelist())
        data = data.lower()
        hits.extend(f"{path}: {n.decode()}" for n in lowered if n in data)
    return hits


def redis_traces(needles: list[str], urls: list[str]) -> list[str]:
    """Keys of the Redis databases (cache, broker, Celery results) whose name or value contains a needle."""
    import redis

    lowered = [n.lower().encode() for n in needles if n]
    hits = []
    for url in dict.fromkeys(urls):
        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(count=1000):
                kind = client.type(key).decode()
                if kind == "string":
                    values = [client.get(key) or b""]
                elif kind == "hash":
                    values = [b"%s=%s" % item for item in client.hgetall(key).items()]
                elif kind == "list":
                    values = client.lrange(key, 0, -1)
                elif kind == "set":
                    values = list(client.smembers(key))
                elif kind == "zset":
                    values = client.zrange(key, 0, -1)
                else:
                    values = []
                blob = (key + b" " + b" ".join(values)).lower()
                hits.extend(f"redis {key!r}: {n.decode()}" for n in lowered if n in blob)
        finally:
            client.close()
    return hits
