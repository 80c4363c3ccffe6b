"""The project's admin site: Unfold, admitting operators (staff) and every member of an organization."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from unfold.sites import UnfoldAdminSite

from accounts.selectors import active_membership

if TYPE_CHECKING:
    from django.http import HttpRequest


class ParlorAdminSite(UnfoldAdminSite):
    site_header = "Parlor"
    site_title = "Parlor"
    index_title = "Dashboard"
    index_template = "accounts/admin/dashboard.html"

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """One sign-in page for everyone: allauth's (rate limited, MFA-aware)."""
        target = reverse("account_login")
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index", current_app=self.name)
        return HttpResponseRedirect(f"{target}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")

    def logout(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if request.method == "POST":  # the admin's own sign-out button (CSRF-checked by the admin view)
            logout(request)
            return HttpResponseRedirect(reverse("account_login"))
        return HttpResponseRedirect(reverse("account_logout"))

    def has_permission(self, request: HttpRequest) -> bool:
        """Operators need ``is_staff``; customers are admitted through a membership in an organization.

        What a customer then sees is decided by ``TenantScopedAdmin`` (rows of the active organization,
        permissions by role); admins that are not tenant-scoped keep Django's model permissions, which
        customers do not hold.
        """
        user = request.user
        if not user.is_active:
            return False
        return bool(user.is_staff or active_membership(request) is not None)
