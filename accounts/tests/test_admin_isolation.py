"""Tenant isolation, proven by walking every registered ModelAdmin and every API route as an outsider.

Two organizations get one object of every tenant-owned model (``isolation.TenantObjects``). Then the
owner of organization B — the most privileged customer role — walks each admin discovered in
``admin.site._registry`` and must never see, choose, change or delete anything of organization A.
Admins registered later are covered automatically; a tenant-owned model whose admin is not a
``TenantScopedAdmin`` fails the test.
"""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.db import models
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from accounts.admin_base import TenantScopedAdmin, tenant_q
from accounts.models import Organization, Role, User
from accounts.services import api_key_create
from accounts.testing import TenantObjects, snapshot, tenant_models
from accounts.tests.factories import make_organization, owner_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> tuple[TenantObjects, TenantObjects]:
    org_a = make_organization(name="Alpha Isolation")
    org_b = make_organization(name="Bravo Isolation")
    a = TenantObjects(org_a, owner_of(org_a)).build_all()
    b = TenantObjects(org_b, owner_of(org_b)).build_all()
    return a, b


def _registered() -> list[tuple[type[models.Model], Any]]:
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _url(model: type[models.Model], view: str, *args: Any) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _foreign_markers(a: TenantObjects) -> list[str]:
    """Strings that only organization A's data contains."""
    markers = [a.marker, a.organization.slug, a.owner.email]
    return [m for m in markers if m]


def _assert_no_leak(content: bytes, a: TenantObjects, where: str, *, echoed: str = "") -> None:
    """Neither A's marker strings nor links to A's objects; ``echoed`` (a search term) is ignored."""
    text = content.decode(errors="replace")
    if echoed:
        text = text.replace(echoed, "")
    for marker in _foreign_markers(a):
        assert marker not in text, f"{where}: shows {marker!r} of another organization"
    for model, obj in a.objects.items():
        try:
            change_url = _url(model, "change", obj.pk)
        except NoReverseMatch:
            continue
        assert change_url not in text, f"{where}: links to {model.__name__} {obj.pk} of another organization"


def _model_choice_fields(form: forms.BaseForm) -> list[tuple[str, forms.ModelChoiceField]]:
    return [
        (name, field)
        for name, field in form.fields.items()
        if isinstance(field, forms.ModelChoiceField) and field.queryset is not None
    ]


def _assert_choices_scoped(form: forms.BaseForm, a: TenantObjects, where: str) -> None:
    for name, field in _model_choice_fields(form):
        related = field.queryset.model
        if related is Organization:
            assert not field.queryset.filter(pk=a.organization.pk).exists(), f"{where}.{name}: offers org A"
            continue
        if related is User:
            assert not field.queryset.filter(pk=a.owner.pk).exists(), f"{where}.{name}: offers A's users"
            continue
        foreign = a.objects.get(related)
        if foreign is not None:
            assert not field.queryset.filter(pk=foreign.pk).exists(), (
                f"{where}.{name}: offers A's {related.__name__}"
            )


def _forms_in(response: Any) -> list[forms.BaseForm]:
    context = response.context
    found = []
    adminform = context.get("adminform") if context else None
    if adminform is not None:
        found.append(adminform.form)
    for inline in (context.get("inline_admin_formsets") or []) if context else []:
        found.extend(inline.formset.forms)
        found.append(inline.formset.empty_form)
    return found


def test_every_tenant_model_is_built_for_the_walk(world):
    a, b = world
    failures = {m._meta.label: e for m, e in {**a.errors, **b.errors}.items()}
    registered = {model for model, _ in _registered()}
    # Registered models must be buildable; add ``isolation_factory`` to the app's tests/factories.py if not.
    assert not {label for label in failures if apps_model(label) in registered}, failures


def apps_model(label: str) -> type[models.Model]:
    from django.apps import apps

    return apps.get_model(label)


def test_every_tenant_owned_admin_is_tenant_scoped():
    unscoped = [
        model._meta.label
        for model, model_admin in _registered()
        if tenant_q(model, None) is not None
        and model is not User
        and not isinstance(model_admin, TenantScopedAdmin)
    ]
    assert not unscoped, f"admins of tenant-owned models must subclass TenantScopedAdmin: {unscoped}"
    assert tenant_models(), "the walk found no tenant-owned models"


def test_outsider_walks_every_model_admin_without_seeing_or_touching_foreign_data(client, world):
    a, b = world
    client.force_login(b.owner)
    before = snapshot(a)
    walked = []
    for model, model_admin in _registered():
        label = model._meta.label
        changelist = client.get(_url(model, "changelist"))
        if not isinstance(model_admin, TenantScopedAdmin):
            # Operator-only admins (users, groups, allauth, beat): customers hold no model permissions.
            assert changelist.status_code in (302, 403), f"{label}: customer reached an operator admin"
            continue
        walked.append(label)
        foreign = a.objects.get(model) or (a.organization if model is Organization else None)
        own = b.objects.get(model) or (b.organization if model is Organization else None)

        # changelist, also searched for A's marker (and through every list filter it offers)
        assert changelist.status_code == 200, f"{label}: changelist {changelist.status_code}"
        _assert_no_leak(changelist.content, a, f"{label} changelist")
        searched = client.get(_url(model, "changelist"), {"q": a.marker})
        _assert_no_leak(searched.content, a, f"{label} search", echoed=a.marker)
        if own is not None and model_admin.get_list_display_links(None, model_admin.list_display):
            assert _url(model, "change", own.pk) in changelist.content.decode(), f"{label}: own row missing"

        # add form: every choice field offers only this organization's rows
        add = client.get(_url(model, "add"))
        assert add.status_code in (200, 403), f"{label}: add {add.status_code}"
        if add.status_code == 200:
            _assert_no_leak(add.content, a, f"{label} add")
            for form in _forms_in(add):
                _assert_choices_scoped(form, a, f"{label} add")

        # own change form: choices scoped as well
        if own is not None:
            page = client.get(_url(model, "change", own.pk))
            assert page.status_code == 200, f"{label}: own change page {page.status_code}"
            _assert_no_leak(page.content, a, f"{label} change")
            for form in _forms_in(page):
                _assert_choices_scoped(form, a, f"{label} change")

        if foreign is None:
            continue
        # A's object by URL: change, history, delete (GET and POST) all answer 404
        for view in ("change", "history", "delete"):
            response = client.get(_url(model, view, foreign.pk))
            assert response.status_code == 404, (
                f"{label}: {view} of A's object answered {response.status_code}"
            )
        # the admin's custom pages of one object: A's answer 404 (GET and POST), B's own do not leak
        for url in model_admin.tenant_object_urls(foreign):
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                assert response.status_code == 404, f"{label}: {method.upper()} {url} {response.status_code}"
                _assert_no_leak(response.content, a, f"{label} {url}")
        for url in model_admin.tenant_object_urls(own) if own is not None else []:
            response = client.get(url)
            assert response.status_code in (200, 403, 404, 410), f"{label}: own {url} {response.status_code}"
            _assert_no_leak(response.content, a, f"{label} {url}")
        response = client.post(_url(model, "change", foreign.pk), {})
        assert response.status_code in (403, 404), (
            f"{label}: POST change of A's object {response.status_code}"
        )
        response = client.post(_url(model, "delete", foreign.pk), {"post": "yes"})
        assert response.status_code in (403, 404), (
            f"{label}: POST delete of A's object {response.status_code}"
        )

        # every action, run on A's object id
        request_actions = model_admin.get_actions(_request_for(b.owner, client))
        for action_name in request_actions:
            response = client.post(
                _url(model, "changelist"),
                {"action": action_name, "_selected_action": [str(foreign.pk)], "post": "yes", "index": "0"},
            )
            assert response.status_code in (200, 302, 403), (
                f"{label}: action {action_name} {response.status_code}"
            )
            _assert_no_leak(response.content, a, f"{label} action {action_name}")

        # unfold row/detail actions addressed to A's object
        for unfold_action in [*model_admin._get_base_actions_row(), *model_admin._get_base_actions_detail()]:
            try:
                url = reverse(f"admin:{unfold_action.action_name}", args=[foreign.pk])
            except NoReverseMatch:
                continue
            response = client.get(url)
            _assert_no_leak(response.content, a, f"{label} {unfold_action.action_name}")

    assert snapshot(a) == before, "organization A's data changed during the outsider's walk"
    assert walked, "no tenant-scoped admin was walked"


def test_outsider_autocomplete_offers_no_foreign_objects(client, world):
    a, b = world
    client.force_login(b.owner)
    checked = 0
    for model, model_admin in _registered():
        request = _request_for(b.owner, client)
        for field_name in model_admin.get_autocomplete_fields(request):
            field = model._meta.get_field(field_name)
            foreign = a.objects.get(field.related_model) or (a.owner if field.related_model is User else None)
            for term in ("", a.marker, str(getattr(foreign, "pk", ""))):
                response = client.get(
                    reverse("admin:autocomplete"),
                    {
                        "app_label": model._meta.app_label,
                        "model_name": model._meta.model_name,
                        "field_name": field_name,
                        "term": term,
                    },
                )
                if response.status_code != 200:
                    assert response.status_code in (403, 404)
                    continue
                ids = {str(result["id"]) for result in response.json()["results"]}
                if foreign is not None:
                    assert str(foreign.pk) not in ids, (
                        f"{model.__name__}.{field_name}: autocomplete offers A's object"
                    )
                _assert_no_leak(
                    response.content, a, f"{model.__name__}.{field_name} autocomplete", echoed=term
                )
                checked += 1
    assert checked >= 0


def test_outsider_dashboard_and_search_show_no_foreign_data(client, world):
    a, b = world
    client.force_login(b.owner)
    dashboard = client.get(reverse("admin:index"))
    assert dashboard.status_code == 200
    _assert_no_leak(dashboard.content, a, "dashboard")
    assert b.organization.name.encode() in dashboard.content
    search = client.get(reverse("admin:search"), {"s": a.marker, "extended": "1"})
    _assert_no_leak(search.content, a, "admin search", echoed=a.marker)


def _request_for(user: User, client: Any) -> Any:
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    request.session = SessionStore(session_key=client.session.session_key)
    return request


# --- API routes ------------------------------------------------------------------------------------------
def _api_routes() -> list[tuple[str, list[str]]]:
    """(route template, parameter names) of every URL under api/."""
    routes: list[tuple[str, list[str]]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith(("api/", "v1/")):
                routes.append((route, list(pattern.pattern.converters)))

    walk(get_resolver().url_patterns, "")
    return routes


def _fill(route: str, value: str) -> str:
    import re

    return "/" + re.sub(r"<(?:\w+:)?\w+>", value, route).lstrip("^").rstrip("$")


def _foreign_ids(a: TenantObjects) -> list[str]:
    values = {str(a.organization.pk)}
    for obj in a.objects.values():
        values.add(str(obj.pk))
        for field in obj._meta.concrete_fields:
            if field.unique and isinstance(field, models.CharField):
                values.add(str(getattr(obj, field.attname)))
    return sorted(values)


def test_outsider_api_key_reaches_nothing_of_another_organization(client, world):
    a, b = world
    key = api_key_create(organization=b.organization, name="outsider", created_by=b.owner).key
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    before = snapshot(a)
    routes = _api_routes()
    assert routes, "no API routes found"
    own = set(_foreign_ids(b))  # integer ids of A's objects may also be ids of B's own objects
    for route, params in routes:
        candidates = _foreign_ids(a) if params else [""]
        for value in candidates:
            url = _fill(route, value)
            for method in ("get", "post", "patch", "delete"):
                if method == "get":
                    response = client.get(url, **headers)
                else:
                    response = getattr(client, method)(url, "{}", content_type="application/json", **headers)
                body = b"".join(response.streaming_content) if response.streaming else response.content
                if params and value not in own:
                    assert not (200 <= response.status_code < 300), (
                        f"{method.upper()} {url}: {response.status_code}"
                    )
                _assert_no_leak(body, a, f"{method.upper()} {url}")
    assert snapshot(a) == before, "organization A's data changed through B's API key"


def test_member_role_cannot_write_through_any_tenant_admin(client, world):
    _, b = world
    from accounts.tests.factories import add_member

    member = add_member(organization=b.organization, role=Role.MEMBER)
    client.force_login(member)
    before = snapshot(b)
    for model, model_admin in _registered():
        if not isinstance(model_admin, TenantScopedAdmin):
            continue
        label = model._meta.label
        assert client.post(_url(model, "add"), {}).status_code == 403, f"{label}: member may add"
        own = b.objects.get(model) or (b.organization if model is Organization else None)
        if own is not None:
            assert client.post(_url(model, "delete", own.pk), {"post": "yes"}).status_code == 403, label
            assert client.post(_url(model, "change", own.pk), {}).status_code == 403, label
            # actions an owner could run are not available to a member
            owner_actions = model_admin.get_actions(_request_for(b.owner, client))
            for action_name in owner_actions:
                client.post(
                    _url(model, "changelist"),
                    {"action": action_name, "_selected_action": [str(own.pk)], "post": "yes", "index": "0"},
                )
    assert snapshot(b) == before


def test_operator_sees_every_organization(client, world):
    a, b = world
    operator = User.objects.create_superuser(email="operator@example.com", password="x" * 16)
    client.force_login(operator)
    for model, model_admin in _registered():
        if not isinstance(model_admin, TenantScopedAdmin) or model not in a.objects:
            continue
        html = client.get(_url(model, "changelist")).content.decode()
        if model_admin.get_list_display_links(None, model_admin.list_display):
            for objects in (a, b):
                assert _url(model, "change", objects.objects[model].pk) in html, model._meta.label
