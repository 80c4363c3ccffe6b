from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default = True

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (sign-ins into the audit log)
        from accounts.api import schema  # noqa: F401  (registers the OpenAPI description of API keys)


class ParlorAdminConfig(admin_apps.AdminConfig):
    """Replaces ``django.contrib.admin`` in INSTALLED_APPS so ``admin.site`` is a ``ParlorAdminSite``."""

    default = False
    default_site = "accounts.admin_site.ParlorAdminSite"
