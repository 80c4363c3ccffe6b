"""The project's admin site: Unfold, admitting operators (staff) and every member of an organization."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unfold.sites import UnfoldAdminSite

from accounts.selectors import active_membership

if TYPE_CHECKING:
    from django.http import HttpRequest


class ParlorAdminSite(UnfoldAdminSite):
    site_header = "Parlor"
    site_title = "Parlor"
    index_title = "Dashboard"

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
