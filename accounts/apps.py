from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default = True

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from accounts import signals  # noqa: F401  (sign-ins into the audit log)
        from accounts.api import schema  # noqa: F401  (registers the OpenAPI description of API keys)
        from accounts.api.cors import cors_for_listed_origins

        # django-cors-headers' documented hook for origins kept in the database (not business flow).
        check_request_enabled.connect(cors_for_listed_origins, dispatch_uid="parlor-api-cors")


class ParlorAdminConfig(admin_apps.AdminConfig):
    """Replaces ``django.contrib.admin`` in INSTALLED_APPS so ``admin.site`` is a ``ParlorAdminSite``."""

    default = False
    default_site = "accounts.admin_site.ParlorAdminSite"
