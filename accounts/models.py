from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if not (extra["is_staff"] and extra["is_superuser"]):
            raise ValueError("A superuser must have is_staff and is_superuser set.")
        user = self._create_user(email, password, **extra)
        # Operators are created from the command line; their address needs no verification mail to sign in.
        from allauth.account.models import EmailAddress

        EmailAddress.objects.update_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
        return user

    def get_by_natural_key(self, email: str) -> User:
        return self.get(email__iexact=email)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in to Parlor; the e-mail address is the login."""

    email = models.EmailField("e-mail address", unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Can sign in to the admin.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


_API_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")


def validate_api_origins(value: object) -> None:
    """``Organization.api_allowed_origins``: a list of exact origins as browsers send them."""
    if not isinstance(value, list) or not all(isinstance(o, str) and _API_ORIGIN.match(o) for o in value):
        raise ValidationError(
            "List origins exactly as browsers send them, lower case and without a path, e.g. "
            '["https://app.example.com", "http://localhost:3000"].'
        )


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


def validate_opening_hours(value: object) -> None:
    """``Organization.opening_hours``: weekday → list of ["HH:MM", "HH:MM"] ranges, start before end."""
    message = 'Use weekdays (mon … sun) with lists of ["HH:MM", "HH:MM"] ranges, e.g. {"mon": [["09:00", "17:00"]]}.'
    if not isinstance(value, dict):
        raise ValidationError(message)
    for day, ranges in value.items():
        if day not in WEEKDAYS or not isinstance(ranges, list):
            raise ValidationError(message)
        for pair in ranges:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise ValidationError(message)
            if not all(_CLOCK.match(p) for p in pair) or pair[0] >= pair[1]:
                raise ValidationError(message)


def validate_time_zone(value: str) -> None:
    if not value:
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a time zone such as Europe/Berlin.") from None


class Organization(models.Model):
    """A customer account (tenant): every object a customer creates belongs to exactly one."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    api_allowed_origins = models.JSONField(
        default=list,
        db_default=[],  # rows inserted by code that predates the field (a rolling deploy) get no origins
        blank=True,
        validators=[validate_api_origins],
        help_text="Websites whose own pages may call the API from the browser (CORS), e.g. "
        '"https://app.example.com". Requests carry an API key; cookies are never sent.',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    conversation_retention_days = models.PositiveIntegerField(
        "keep conversations (days)",
        null=True,
        blank=True,
        help_text="Conversations whose last message is older than this are deleted. Empty: kept forever. "
        "A bot may set its own period.",
    )
    audit_retention_days = models.PositiveIntegerField(
        "keep audit log (days)",
        null=True,
        blank=True,
        default=365,
        help_text="Audit events older than this are deleted. Empty: kept forever.",
    )
    opening_hours = models.JSONField(
        default=dict,
        db_default={},
        blank=True,
        validators=[validate_opening_hours],
        help_text="When people answer handed-over chats, per weekday in the time zone below, e.g. "
        '{"mon": [["09:00", "17:00"]], "sat": [["10:00", "14:00"]]}; a day not listed is closed. '
        "Empty: always open.",
    )
    opening_hours_timezone = models.CharField(
        "time zone",
        max_length=64,
        blank=True,
        default="",
        db_default="",
        validators=[validate_time_zone],
        help_text='The opening hours\' time zone, e.g. "Europe/Berlin". Empty: UTC.',
    )
    # Set when an owner confirmed the deletion: the background job removes everything, then this row.
    deletion_requested_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # How this member hears of a visitor who asks for a person (chatbots.handoff).
    notify_handoff_email = models.BooleanField(
        "e-mail me on handoff", default=True, db_default=True,
        help_text="An e-mail when a visitor asks for a person.",
    )  # fmt: skip
    notify_handoff_browser = models.BooleanField(
        "browser notification on handoff", default=True, db_default=True,
        help_text="A browser notification while the admin is open.",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="unique_membership")]
        verbose_name = "member"
        verbose_name_plural = "members"

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


def _invitation_expiry() -> datetime:
    return timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS)


class Invitation(models.Model):
    """An e-mail invitation to join an organization with a role; the mailed link carries the token."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField("e-mail address")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # SHA-256 of the link's token: a leaked database does not leak usable invitation links.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization} ({self.role})"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"


class ApiKey(models.Model):
    """A secret for the REST API. Only ``prefix`` (public) and the SHA-256 of the full key are stored."""

    is_api_key = True  # lets selectors recognise ``request.auth`` without importing this module

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(default=False, help_text="Only GET requests are allowed.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Leave empty for no expiry.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        return "expired" if self.is_expired else "active"


class AuditAction(models.TextChoices):
    SIGN_IN = "sign_in", "Signed in"
    SIGN_IN_FAILED = "sign_in_failed", "Failed sign-in"
    API_KEY_CREATED = "api_key_created", "API key created"
    API_KEY_REVOKED = "api_key_revoked", "API key revoked"
    ROLE_CHANGED = "role_changed", "Role changed"
    MEMBER_REMOVED = "member_removed", "Member removed"
    OWNERSHIP_HANDED_OVER = "ownership_handed_over", "Ownership handed over"
    INVITATION_SENT = "invitation_sent", "Invitation sent"
    INVITATION_REVOKED = "invitation_revoked", "Invitation revoked"
    INVITATION_ACCEPTED = "invitation_accepted", "Invitation accepted"
    OBJECT_CREATED = "object_created", "Created"
    OBJECT_CHANGED = "object_changed", "Changed"
    OBJECT_DELETED = "object_deleted", "Deleted"
    EXPORT_REQUESTED = "export_requested", "Data export requested"
    ERASURE_REQUESTED = "erasure_requested", "Erasure requested"
    ERASURE_DONE = "erasure_done", "Erasure finished"
    RETENTION_RUN = "retention_run", "Retention run"
    RETENTION_CHANGED = "retention_changed", "Retention changed"
    ORGANIZATION_DELETION_REQUESTED = "organization_deletion_requested", "Organization deletion requested"


class AuditEvent(models.Model):
    """Who did what and when in an organization. Append-only for the application (``save`` refuses
    updates, ``delete`` refuses); only the retention job removes old events, by a queryset delete.
    Records actions, never erased content: ``target`` names an object by kind and id."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # The actor as they were called then (an API key's prefix, "system" for jobs); kept after they leave.
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    target = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="auditevent_org_time")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target}".strip()

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit events are append-only; the retention job removes old ones.")
