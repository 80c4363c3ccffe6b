from __future__ import annotations

from django.urls import path

from accounts.api import views

urlpatterns = [
    path("organization/", views.OrganizationView.as_view(), name="api-organization"),
    path("api-keys/", views.ApiKeyListView.as_view(), name="api-api-keys"),
    path("api-keys/<str:prefix>/revoke/", views.ApiKeyRevokeView.as_view(), name="api-api-key-revoke"),
]
