"""Customer-facing account views: the landing page, accept an invitation, switch the active organization,
delete one's account."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allauth.account.adapter import get_adapter
from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.deletion import HANDOVER_DELETE, sole_ownerships, user_delete
from accounts.exceptions import ApplicationError
from accounts.selectors import (
    PENDING_INVITATION_SESSION_KEY,
    membership_for_organization_id,
    set_active_organization,
)
from accounts.services import invitation_accept, invitation_get_pending

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def home(request: HttpRequest) -> HttpResponse:
    """The public front page: a newcomer who opens the site's address learns what it is and how to get in."""
    return render(request, "accounts/home.html")


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Show an invitation; signed-in users accept it with a POST, others sign up or sign in first."""
    pending = invitation_get_pending(token=token)
    if pending is None:
        request.session.pop(PENDING_INVITATION_SESSION_KEY, None)
        return render(request, "accounts/invitation_invalid.html", status=404)
    if not request.user.is_authenticated:
        # The link proves the mailbox: signing up with this address needs no second verification mail.
        request.session[PENDING_INVITATION_SESSION_KEY] = token
        get_adapter(request).stash_verified_email(request, pending.email)
    elif request.method == "POST":
        try:
            membership = invitation_accept(invitation=pending, user=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            request.session.pop(PENDING_INVITATION_SESSION_KEY, None)
            set_active_organization(request, membership.organization)
            messages.success(request, f"Welcome to {membership.organization.name}.")
            return HttpResponseRedirect(reverse("admin:index"))
    return render(
        request,
        "accounts/invitation.html",
        {
            "invitation": pending,
            "signup_url": reverse("account_signup"),
            "login_url": reverse("account_login"),
        },
    )


@require_POST
@login_required
def organization_switch(request: HttpRequest) -> HttpResponse:
    """Make another of the user's organizations the active one."""
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError as exc:
        raise Http404("Unknown organization.") from exc
    membership = membership_for_organization_id(user=request.user, organization_id=organization_id)
    if membership is None:
        raise Http404("Unknown organization.")
    set_active_organization(request, membership.organization)
    next_url = request.POST.get("next") or reverse("admin:index")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = reverse("admin:index")
    return HttpResponseRedirect(next_url)


def _account_delete_enabled(request: HttpRequest) -> bool:
    return request.method == "POST"


@login_required
@reauthentication_required(enabled=_account_delete_enabled)
def account_delete(request: HttpRequest) -> HttpResponse:
    """Delete one's own account after signing in again (allauth's re-authentication). Each organization the
    user alone owns must be handed over to a member or deleted — the form asks, nothing is left orphaned."""
    sole = sole_ownerships(user=request.user)
    error = ""
    if request.method == "POST" and request.POST.get("confirm") == "delete":
        decisions = {s.organization.pk: request.POST.get(f"org-{s.organization.pk}", "") for s in sole}
        user = request.user
        try:
            user_delete(user=user, decisions=decisions)
        except ApplicationError as exc:
            error = exc.message
        else:
            logout(request)
            messages.success(request, "Your account has been deleted.")
            return HttpResponseRedirect(reverse("account_login"))
    elif request.method == "POST":
        error = "Tick the box to confirm that your account is to be deleted."
    return render(request, "accounts/account_delete.html", {"sole": sole, "error": error,
                                                            "delete_choice": HANDOVER_DELETE})  # fmt: skip
