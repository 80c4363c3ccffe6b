from __future__ import annotations

from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path("account/delete/", views.account_delete, name="account_delete"),
    path("organization/switch/", views.organization_switch, name="organization_switch"),
]
