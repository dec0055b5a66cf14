"""The one settings module. Everything an operator changes comes from the environment (12-factor).

Defaults suit `make demo` on one machine (SQLite and a filesystem broker under var/); production sets
DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and SITE_URL. Nonsense values fail at start-up.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from audit import conf as audit_conf
from portal.logs import configure_logging

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A developer's local overrides; production passes real environment variables.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# Local state (SQLite, the demo's PACS, spool, digests, the demo's Redis): a soak run uses a folder of its own.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

DEBUG = env.bool("DEBUG", default=False)
# Under pytest the HTTPS-only defaults would break the test client and the live server over http.
TESTING = "pytest" in sys.modules
PRODUCTION = not DEBUG and not TESTING

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set (it signs sessions and password-reset links).")
    SECRET_KEY = "insecure-development-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "csp",
    "portal",
    "accounts",
    "directory",
    "audit",
    "auditconsole",
    "exchange",
    "transfers",
    "pulls",
    "reconciliation",
    "region",
]

MIDDLEWARE = [
    "portal.middleware.RequestIDMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.NoStoreMiddleware",
    "portal.control_chars.ControlCharacterMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionLifetimeMiddleware",
    "accounts.middleware.MFARequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.errors.NotFoundMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "accounts.context_processors.memberships",
            ],
        },
    },
]

VAR_DIR.mkdir(exist_ok=True)
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Readers and one writer at once; the audit chain serialises its own writers.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    # A transaction that reads and then writes must take the write lock when it begins: upgrading later
    # fails at once with "database is locked" (no busy wait) if a worker wrote in between.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The role that owns the tables, for `manage.py migrate` only (audit/dbroles.py): the portal itself runs
# as DATABASE_URL's role, which may read and append to the audit trail but not rewrite, truncate or alter it.
MIGRATION_DATABASE = env.db_url("MIGRATION_DATABASE_URL") if env.str("MIGRATION_DATABASE_URL", default="") else None
if MIGRATION_DATABASE is not None:
    _same = ("ENGINE", "NAME", "HOST", "PORT")
    if any(MIGRATION_DATABASE.get(key) != DATABASES["default"].get(key) for key in _same):
        raise ImproperlyConfigured("MIGRATION_DATABASE_URL must name DATABASE_URL's database, as another role.")
    if not MIGRATION_DATABASE["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured("MIGRATION_DATABASE_URL is for PostgreSQL (SQLite has no roles).")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        # Rate limits and used TOTP codes must be shared by every web process: a file cache is.
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": VAR_DIR / "cache"}
    )
}
if TESTING:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# Sessions: the idle timeout is the cookie age renewed on every request; the absolute one is checked
# by accounts.middleware.SessionLifetimeMiddleware against the sign-in time.
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_ABSOLUTE_TIMEOUT = env.int("SESSION_ABSOLUTE_TIMEOUT", default=12 * 60 * 60)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# django-allauth: staff sign in by email; accounts are created by administrators, never by sign-up.
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Image Exchange] "
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
# Five failed sign-ins for one email in 15 minutes lock that account out for the rest of the window;
# one address may try 20 times a minute across accounts.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env.str("LOGIN_FAILED_RATE_LIMIT", default="20/m/ip,5/15m/key"),
    "reset_password": "20/m/ip,5/15m/key",
}
MFA_ADAPTER = "accounts.adapters.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG or TESTING
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Regional Image Exchange")
MFA_PASSKEY_LOGIN_ENABLED = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a refused token then answers 401 with WWW-Authenticate, as machine clients expect.
        # DRF's TokenAuthentication, putting each token's use (and each refused token) on the audit trail.
        "accounts.authentication.AuditedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "portal.schema.PortalAutoSchema",
    "DEFAULT_THROTTLE_RATES": {"anon": "60/min"},
}
# API tokens (accounts.tokens): hashed, expiring, listed and revocable at /account/tokens/ and /api/v1/tokens/.
API_TOKEN_DEFAULT_DAYS = env.int("API_TOKEN_DEFAULT_DAYS", default=90)
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=365)
if not 1 <= API_TOKEN_DEFAULT_DAYS <= API_TOKEN_MAX_DAYS:
    raise ImproperlyConfigured("API_TOKEN_DEFAULT_DAYS must be between 1 and API_TOKEN_MAX_DAYS.")
SPECTACULAR_SETTINGS = {
    "TITLE": "Regional Image Exchange Portal API",
    "DESCRIPTION": "Push, request and share DICOM studies between NHS trusts (SPEC section 7).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema maps every endpoint and parameter: for signed-in staff and API clients only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: no CDN, and nothing the Content-Security-Policy must allow.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

FORMS_URLFIELD_ASSUME_HTTPS = True

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = not PRODUCTION
# frontend/build/<package>/ holds the npm builds `make venv` copies there (frontend/vendor.py), served
# as /static/vendor/<package>/...: our own files, never a CDN.
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor", BASE_DIR / "frontend" / "build")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

SPOOL_DIR = Path(env.str("SPOOL_DIR", default=str(VAR_DIR / "spool")))
DICOM_AE_TITLE = env.str("DICOM_AE_TITLE", default="IEP_PORTAL")
DICOM_PORT = env.int("DICOM_PORT", default=11112)
if not 1 <= DICOM_PORT <= 65535:
    raise ImproperlyConfigured(f"DICOM_PORT must be 1-65535, not {DICOM_PORT}.")
# The demo's four simulated PACS listen on this port and the three after it (directory/demo.py).
DEMO_PACS_BASE_PORT = env.int("DEMO_PACS_BASE_PORT", default=11120)
# The receiver (docs/receiver.md): only gateways in the directory may call it, from their hosts; it holds
# at most MAX_ASSOCIATIONS associations, MAX_PER_PEER of them for one caller (at least the largest gateway
# max_concurrency that retrieves by C-MOVE: each C-MOVE brings one association), ends associations idle
# for IDLE_TIMEOUT seconds, and re-reads the directory every ALLOW_LIST_REFRESH seconds (and at once when
# a caller it does not know calls, so a gateway just registered gets in on its first try).
DICOM_RECEIVER_MAX_ASSOCIATIONS = env.int("DICOM_RECEIVER_MAX_ASSOCIATIONS", default=50)
DICOM_RECEIVER_MAX_PER_PEER = env.int("DICOM_RECEIVER_MAX_PER_PEER", default=10)
DICOM_RECEIVER_IDLE_TIMEOUT = env.float("DICOM_RECEIVER_IDLE_TIMEOUT", default=60.0)
DICOM_RECEIVER_ALLOW_LIST_REFRESH = env.float("DICOM_RECEIVER_ALLOW_LIST_REFRESH", default=30.0)
# Try to decode the first compressed frame of each arrival and flag the ones our decoders cannot decode
# (stored all the same): a few to tens of milliseconds a compressed frame; off to save that CPU.
DICOM_RECEIVER_DECODE_CHECK = env.bool("DICOM_RECEIVER_DECODE_CHECK", default=True)
if not 1 <= DICOM_RECEIVER_MAX_PER_PEER <= DICOM_RECEIVER_MAX_ASSOCIATIONS <= 1000:
    raise ImproperlyConfigured(
        "DICOM_RECEIVER_MAX_PER_PEER must be at least 1 and at most DICOM_RECEIVER_MAX_ASSOCIATIONS (at most 1000)."
    )
if DICOM_RECEIVER_IDLE_TIMEOUT < 5 or not 1 <= DICOM_RECEIVER_ALLOW_LIST_REFRESH <= 3600:
    raise ImproperlyConfigured(
        "DICOM_RECEIVER_IDLE_TIMEOUT must be at least 5 s, DICOM_RECEIVER_ALLOW_LIST_REFRESH 1-3600 s."
    )

# Email: EMAIL_URL (e.g. smtp+tls://user:pass@host:587) or the usual EMAIL_*; console when unset.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Image Exchange <no-reply@image-exchange.invalid>")

# Celery: Redis in production, CI and the demo (its own embedded Redis on a Unix socket, portal/demo.py);
# kombu's filesystem transport only for a lone manage.py command without REDIS_URL (it is not safe with
# several consumers: docs/operations.md).
_redis_broker = REDIS_URL.replace("unix://", "redis+socket://", 1) if REDIS_URL.startswith("unix://") else REDIS_URL
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_redis_broker or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # Redis: a worker started with `--queues urgent,routine,default` drains them in that order (kombu's
    # default is round robin, which lets a routine transfer start before a waiting trauma one).
    "queue_order_strategy": "priority",
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Otherwise kombu keeps broadcast (control) messages in ./control of whatever directory it runs in.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    # kombu polls the folder once a second by default: up to a second's wait before any transfer starts.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = env.float("CELERY_BROKER_POLLING_INTERVAL", default=0.1)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Every task's queue, by name, in this one place (beat entries and callers name no queue; the exceptions
# are a transfer's and a forwarding's priority, chosen per call: urgent, routine or bulk). Every queue named here
# must be consumed by the workers of Procfile, Procfile.demo and docker-compose.yml
# (tests/deployment/test_routing.py): `urgent` (trauma and urgent transfers), `routine` (PACS work a
# person waits on less: routine transfers, share links, staff views, filing), `default` (housekeeping),
# `bulk` (the regional archive's forwarding copies and migrations, region/: drained last by every worker).
# A task matching no route goes to `default` too, never to Celery's own `celery` queue that nobody reads.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {
    "transfers.run_transfer": {"queue": "routine"},  # enqueued on its priority's queue
    "transfers.sweep_stalled": {"queue": "routine"},
    "reconciliation.forward_held": {"queue": "routine"},  # enqueued on its transfer's queue
    "sharing.purge_share_links": {"queue": "default"},
    "sharing.*": {"queue": "routine"},
    "exchange.stage_study_view": {"queue": "routine"},
    "exchange.*": {"queue": "default"},  # gateway health rounds and echoes, purging staff views
    "dicomweb.*": {"queue": "routine"},
    "pulls.*": {"queue": "default"},
    "audit.*": {"queue": "default"},  # alert scans, digests, chain verification
}
CELERY_BEAT_SCHEDULE: dict = {}
# Gateway health (exchange/tasks.py): every gateway is echoed this often.
GATEWAY_ECHO_SECONDS = env.int("GATEWAY_ECHO_SECONDS", default=60)
if GATEWAY_ECHO_SECONDS < 10:
    raise ImproperlyConfigured(f"GATEWAY_ECHO_SECONDS must be at least 10, not {GATEWAY_ECHO_SECONDS}.")
CELERY_BEAT_SCHEDULE["exchange-echo-gateways"] = {
    "task": "exchange.echo_gateways",
    "schedule": float(GATEWAY_ECHO_SECONDS),
}
CELERY_TIMEZONE = TIME_ZONE

# A transfer's status is not a gateway's: name both enums in the OpenAPI schema (else a warning, and
# `check --deploy --fail-level WARNING` fails).
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "TransferStatusEnum": "transfers.models.Status",
        "GatewayStatusEnum": "directory.models.Gateway.Status",
        "TrustKindEnum": "directory.models.Trust.Kind",
        "GatewayKindEnum": "directory.models.Gateway.Kind",
        "MigrationStatusEnum": "region.models.MigrationJob.Status",
        "ServiceAccountRoleEnum": "accounts.roles.SERVICE_ACCOUNT_ROLE_CHOICES",
        "RoleEnum": "accounts.roles.Role",
        "CorrectionDeliveryStateEnum": "copies.models.DeliveryState",
        "CorrectionKindEnum": "copies.models.CorrectionKind",
        "ApiTokenStateEnum": ["active", "expired", "revoked"],
    }
)
# Every kind of work that reaches a PACS goes through directory/access.py (docs/gateway-access.md), under
# one retry policy: transient gateway errors are retried with exponential backoff and jitter for this long,
# then the work fails with its last error; permanent errors fail at once. TRANSFER_RETRY_* are older names
# for the same settings, still read from the environment.
GATEWAY_RETRY_WINDOW = env.int("GATEWAY_RETRY_WINDOW", default=env.int("TRANSFER_RETRY_WINDOW", default=2 * 3600))
GATEWAY_RETRY_BASE_DELAY = env.float(
    "GATEWAY_RETRY_BASE_DELAY", default=env.float("TRANSFER_RETRY_BASE_DELAY", default=15.0)
)
GATEWAY_RETRY_MAX_DELAY = env.float(
    "GATEWAY_RETRY_MAX_DELAY", default=env.float("TRANSFER_RETRY_MAX_DELAY", default=600.0)
)
if GATEWAY_RETRY_WINDOW < 0 or not 0 < GATEWAY_RETRY_BASE_DELAY <= GATEWAY_RETRY_MAX_DELAY:
    raise ImproperlyConfigured("GATEWAY_RETRY_*: window >= 0, 0 < base delay <= max delay.")
# A worker renews its lease on a running transfer every few seconds; a lease this old belongs to a dead worker.
TRANSFER_LEASE_SECONDS = env.int("TRANSFER_LEASE_SECONDS", default=120)
# Long DICOM work gets its own limits (the default task limits suit short jobs).
TRANSFER_SOFT_TIME_LIMIT = env.int("TRANSFER_SOFT_TIME_LIMIT", default=6 * 3600)
TRANSFER_TIME_LIMIT = env.int("TRANSFER_TIME_LIMIT", default=6 * 3600 + 300)
# Batches one transfer may have in flight to its destination, each holding one of the gateway's slots
# (extra slots only when free). 2: a PACS stores two batches side by side (Orthanc on loopback: about 80
# -> 150 MB/s for STOW-RS alone, benchmarks/transfer_throughput.py), and one extra slot still leaves a
# gateway's others to other transfers; more helps a distant PACS and costs other transfers their slots.
TRANSFER_STORE_STREAMS = env.int("TRANSFER_STORE_STREAMS", default=2)
# What sends C-STOREs: "pynetdicom", or "dcmsend" (dcmtk's, one process per batch, its per-file report
# read back; pynetdicom for what it could not send). Measured on the engine's C-GET -> C-STORE pair the two
# cost the same CPU (the receive side dominates: docs/performance.md), so the established one is default.
DICOM_STORE_SENDER = env.str("DICOM_STORE_SENDER", default="pynetdicom")
if TRANSFER_LEASE_SECONDS < 5 or not 0 < TRANSFER_SOFT_TIME_LIMIT < TRANSFER_TIME_LIMIT:
    raise ImproperlyConfigured("TRANSFER_* settings: lease >= 5 s, soft limit below the hard limit.")
if not 1 <= TRANSFER_STORE_STREAMS <= 64:
    raise ImproperlyConfigured("TRANSFER_STORE_STREAMS must be between 1 and 64 (a gateway's max_concurrency caps it).")
# Where a transfer holds instances between retrieving and storing them (at most a few batches: the
# engine's bounded spool; throw-away, a crash retrieves again). Point it at a RAM-backed tmpfs sized for a
# few hundred MB per worker process: file creation and deletion on a journaling file system cost the
# worker (and any PACS on the same disk) more CPU than moving the bytes. A pass falls back to
# SPOOL_DIR/transfers when the scratch folder has less than TRANSFER_SCRATCH_RESERVE bytes free.
TRANSFER_SCRATCH_DIR = env.str("TRANSFER_SCRATCH_DIR", default="")  # "": SPOOL_DIR/transfers
TRANSFER_SCRATCH_RESERVE = env.int("TRANSFER_SCRATCH_RESERVE", default=256 * 1024 * 1024)
CELERY_BEAT_SCHEDULE["transfers-sweep-stalled"] = {"task": "transfers.sweep_stalled", "schedule": 60.0}

# The regional archive (region/, docs/region.md): forwarding copies and migrations run from the `bulk` queue,
# which every worker consumes last (queue_order_strategy "priority"), behind urgent and routine work.
CELERY_TASK_ROUTES.update({"region.*": {"queue": "bulk"}})
MIGRATION_LEASE_SECONDS = env.int("MIGRATION_LEASE_SECONDS", default=60)
MIGRATION_SLICE_SECONDS = env.int("MIGRATION_SLICE_SECONDS", default=120)
MIGRATION_YIELD_SECONDS = env.float("MIGRATION_YIELD_SECONDS", default=5.0)
if MIGRATION_LEASE_SECONDS < 5 or MIGRATION_SLICE_SECONDS < 1 or MIGRATION_YIELD_SECONDS <= 0:
    raise ImproperlyConfigured("MIGRATION_*: lease >= 5 s, slice >= 1 s, yield > 0 s.")
CELERY_BEAT_SCHEDULE["region-sweep-migrations"] = {"task": "region.sweep_migrations", "schedule": 60.0}

# One time limit per kind of work that reaches a PACS: (soft, hard) seconds for its Celery task. At the soft
# limit a transfer stops and resumes from its ledger; other work fails saying which limit stopped it (a
# retry would take as long again). Work other than transfers (which renew a lease) must end within the
# broker's visibility timeout, or Redis hands the same task to a second worker while the first still runs.
GATEWAY_TIME_LIMITS = {
    "transfer": (TRANSFER_SOFT_TIME_LIMIT, TRANSFER_TIME_LIMIT),
    "staging": (env.int("STAGING_SOFT_TIME_LIMIT", default=45 * 60), env.int("STAGING_TIME_LIMIT", default=46 * 60)),
    "filing": (env.int("FILING_SOFT_TIME_LIMIT", default=5 * 60), env.int("FILING_TIME_LIMIT", default=6 * 60)),
    "forwarding": (
        env.int("FORWARDING_SOFT_TIME_LIMIT", default=45 * 60),
        env.int("FORWARDING_TIME_LIMIT", default=46 * 60),
    ),
    "health": (env.int("HEALTH_SOFT_TIME_LIMIT", default=120), env.int("HEALTH_TIME_LIMIT", default=150)),
    # One slice of a migration (region.migration): it stops between studies after MIGRATION_SLICE_SECONDS
    # and goes back on its queue, so only one very large study could come near these.
    "migration": (
        env.int("MIGRATION_SOFT_TIME_LIMIT", default=20 * 60),
        env.int("MIGRATION_TIME_LIMIT", default=21 * 60),
    ),
    # An exchanged study's manifest: the destination's listing of the study (three C-FINDs or QIDO-RS calls).
    "manifest": (env.int("MANIFEST_SOFT_TIME_LIMIT", default=5 * 60), env.int("MANIFEST_TIME_LIMIT", default=6 * 60)),
    "correction": (
        env.int("CORRECTION_SOFT_TIME_LIMIT", default=20 * 60),
        env.int("CORRECTION_TIME_LIMIT", default=21 * 60),
    ),
}
for _work, (_soft, _hard) in GATEWAY_TIME_LIMITS.items():
    if not 0 < _soft < _hard:
        raise ImproperlyConfigured(f"The {_work} time limits: 0 < soft ({_soft}) < hard ({_hard}).")
    _visibility = CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if _work != "transfer" and _visibility and _hard >= _visibility:
        raise ImproperlyConfigured(
            f"The {_work} hard time limit ({_hard} s) must be below CELERY_VISIBILITY_TIMEOUT ({_visibility} s)."
        )
# Interactive work (a search, a study's page, an echo from a page) runs while a person waits: it waits this
# long for a free slot, then the page answers "busy, try again" (503); its network timeouts are capped at
# GATEWAY_INTERACTIVE_TIMEOUT; and it takes no slot from background work that has waited
# GATEWAY_INTERACTIVE_YIELD_AFTER seconds for that gateway (so searches never keep a transfer out for ever).
GATEWAY_INTERACTIVE_WAIT = env.float("GATEWAY_INTERACTIVE_WAIT", default=5.0)
GATEWAY_INTERACTIVE_TIMEOUT = env.float("GATEWAY_INTERACTIVE_TIMEOUT", default=20.0)
GATEWAY_INTERACTIVE_YIELD_AFTER = env.float("GATEWAY_INTERACTIVE_YIELD_AFTER", default=30.0)
if GATEWAY_INTERACTIVE_WAIT < 0 or GATEWAY_INTERACTIVE_TIMEOUT <= 0 or GATEWAY_INTERACTIVE_YIELD_AFTER < 0:
    raise ImproperlyConfigured("GATEWAY_INTERACTIVE_*: the wait and yield >= 0, the timeout > 0.")

# Requests (pulls/): an unanswered request is escalated by email to the source trust's approvers after
# this many seconds, per priority; beat looks for overdue ones every REQUEST_ESCALATION_SCAN_SECONDS.
REQUEST_ESCALATE_AFTER = {
    "trauma": env.int("REQUEST_ESCALATE_TRAUMA_SECONDS", default=10 * 60),
    "urgent": env.int("REQUEST_ESCALATE_URGENT_SECONDS", default=60 * 60),
    "routine": env.int("REQUEST_ESCALATE_ROUTINE_SECONDS", default=8 * 3600),
}
REQUEST_ESCALATION_SCAN_SECONDS = env.int("REQUEST_ESCALATION_SCAN_SECONDS", default=60)
if min(REQUEST_ESCALATE_AFTER.values()) < 1 or REQUEST_ESCALATION_SCAN_SECONDS < 1:
    raise ImproperlyConfigured("REQUEST_ESCALATE_*_SECONDS and REQUEST_ESCALATION_SCAN_SECONDS must be positive.")
CELERY_BEAT_SCHEDULE["pulls-escalate-overdue"] = {
    "task": "pulls.escalate_overdue",
    "schedule": float(REQUEST_ESCALATION_SCAN_SECONDS),
}

# Security headers. HTTPS-only settings are on unless DEBUG (or under the test runner).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
X_FRAME_OPTIONS = "DENY"
# How many proxies in front of us append to X-Forwarded-For; 0 means trust only REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT must be 0 or more, not {TRUSTED_PROXY_COUNT}.")
if env.bool("BEHIND_TLS_PROXY", default=False):
    # Behind a proxy every request comes from the proxy's address: without the count, share-link guess
    # limits, sign-in lockouts and audit addresses would all apply to the proxy, i.e. to everyone at once.
    if "TRUSTED_PROXY_COUNT" not in env.ENVIRON or TRUSTED_PROXY_COUNT < 1:
        raise ImproperlyConfigured(
            "BEHIND_TLS_PROXY is set: set TRUSTED_PROXY_COUNT to the number of proxies in front of the portal "
            "that append to X-Forwarded-For (1 for a single TLS-terminating proxy)."
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# The audit trail (audit/). Events are kept at least this long; nothing in the portal deletes them at all.
AUDIT_RETENTION_YEARS = audit_conf.at_least(
    "AUDIT_RETENTION_YEARS", env.int("AUDIT_RETENTION_YEARS", default=8), audit_conf.MINIMUM_RETENTION_YEARS
)
# One "API token used" event per token per this many seconds (every call's own events still name the token).
AUDIT_TOKEN_USE_INTERVAL = audit_conf.at_least("AUDIT_TOKEN_USE_INTERVAL", env.int("AUDIT_TOKEN_USE_INTERVAL", 900), 0)
# How this portal names itself in DICOM and FHIR audit exports.
AUDIT_SOURCE_ID = env.str("AUDIT_SOURCE_ID", default=DICOM_AE_TITLE)
AUDIT_ENTERPRISE_SITE_ID = env.str("AUDIT_ENTERPRISE_SITE_ID", default="Regional Image Exchange")
# The daily signed digest of the chain head: written here, and emailed to the region's IG officers.
AUDIT_DIGEST_DIR = Path(env.str("AUDIT_DIGEST_DIR", default=str(VAR_DIR / "audit-digests")))
AUDIT_DIGEST_SIGNING_KEY_FILE = env.str("AUDIT_DIGEST_SIGNING_KEY_FILE", default="")  # Ed25519 PEM; else HMAC
AUDIT_DIGEST_RECIPIENTS = env.list("AUDIT_DIGEST_RECIPIENTS", default=[])
AUDIT_DIGEST_HOUR = env.int("AUDIT_DIGEST_HOUR", default=2)
if not 0 <= AUDIT_DIGEST_HOUR <= 23:
    raise ImproperlyConfigured(f"AUDIT_DIGEST_HOUR must be 0-23, not {AUDIT_DIGEST_HOUR}.")
AUDIT_VERIFY_TIME_LIMIT = env.int("AUDIT_VERIFY_TIME_LIMIT", default=4 * 3600)
# Alerts (audit/alerts.py): how often the rules run, and their thresholds.
AUDIT_ALERT_SCAN_SECONDS = audit_conf.at_least("AUDIT_ALERT_SCAN_SECONDS", env.int("AUDIT_ALERT_SCAN_SECONDS", 120), 10)
AUDIT_ALERT_SHARE_LINK_MAX_IPS = audit_conf.at_least(
    "AUDIT_ALERT_SHARE_LINK_MAX_IPS", env.int("AUDIT_ALERT_SHARE_LINK_MAX_IPS", default=3), 1
)
AUDIT_ALERT_SHARE_LINK_WINDOW_HOURS = audit_conf.at_least(
    "AUDIT_ALERT_SHARE_LINK_WINDOW_HOURS", env.int("AUDIT_ALERT_SHARE_LINK_WINDOW_HOURS", default=24), 1
)
AUDIT_ALERT_SEARCHES_PER_HOUR = audit_conf.at_least(
    "AUDIT_ALERT_SEARCHES_PER_HOUR", env.int("AUDIT_ALERT_SEARCHES_PER_HOUR", default=100), 1
)
AUDIT_ALERT_RELATIONSHIP_DAYS = audit_conf.at_least(
    "AUDIT_ALERT_RELATIONSHIP_DAYS", env.int("AUDIT_ALERT_RELATIONSHIP_DAYS", default=365), 1
)
AUDIT_ALERT_OUT_OF_HOURS = env.bool("AUDIT_ALERT_OUT_OF_HOURS", default=True)
AUDIT_WORKING_HOURS = audit_conf.working_hours(env.str("AUDIT_WORKING_HOURS", default="07:00-19:00"))
AUDIT_WORKING_DAYS = audit_conf.working_days(
    env.list("AUDIT_WORKING_DAYS", default=["mon", "tue", "wed", "thu", "fri"])
)
AUDIT_HOLIDAYS = audit_conf.holidays(env.list("AUDIT_HOLIDAYS", default=[]))
# Who hears of region-wide alerts (a broken chain) besides IG officers and regional administrators.
AUDIT_ALERT_EXTRA_RECIPIENTS = env.list("AUDIT_ALERT_EXTRA_RECIPIENTS", default=[])
CELERY_BEAT_SCHEDULE["audit-alert-scan"] = {"task": "audit.scan_alerts", "schedule": float(AUDIT_ALERT_SCAN_SECONDS)}
# The day's digest (from AUDIT_DIGEST_HOUR on) is written at the first check that finds it missing: at
# the hour itself, or as soon as beat runs again if it was down then (audit.digest.export_due_digest).
AUDIT_DIGEST_CHECK_SECONDS = audit_conf.at_least(
    "AUDIT_DIGEST_CHECK_SECONDS", env.int("AUDIT_DIGEST_CHECK_SECONDS", default=60), 10
)
CELERY_BEAT_SCHEDULE["audit-chain-digest"] = {
    "task": "audit.export_chain_digest",
    "schedule": float(AUDIT_DIGEST_CHECK_SECONDS),
}
# Every hour the database is checked against the digest files (and the chain walked since the newest).
CELERY_BEAT_SCHEDULE["audit-chain-anchor-check"] = {
    "task": "audit.verify_chain_anchored",
    "schedule": crontab(minute=40),
}
CELERY_BEAT_SCHEDULE["audit-chain-full-verification"] = {
    "task": "audit.verify_chain_fully",
    "schedule": crontab(day_of_week="sun", hour=(AUDIT_DIGEST_HOUR + 1) % 24, minute=30),
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
if LOG_FORMAT not in ("console", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be console or json, not {LOG_FORMAT!r}.")
LOGGING_CONFIG = None
configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)

# External second opinions (sharing/): share links, their staged copies and the consultant's session.
INSTALLED_APPS.append("sharing")
SHARE_DIR = SPOOL_DIR / "share"  # SPOOL_DIR/share/<link id>/<SOPInstanceUID>.dcm; web and workers share it
SHARE_LINK_DEFAULT_HOURS = env.int("SHARE_LINK_DEFAULT_HOURS", default=72)
SHARE_LINK_CODE_MINUTES = env.int("SHARE_LINK_CODE_MINUTES", default=30)
SHARE_LINK_MAX_CODE_FAILURES = env.int("SHARE_LINK_MAX_CODE_FAILURES", default=10)
# Unknown tokens one address may try per window before every /s/<token> from it answers 429.
SHARE_LINK_GUESS_LIMIT = env.int("SHARE_LINK_GUESS_LIMIT", default=20)
SHARE_LINK_GUESS_WINDOW = env.int("SHARE_LINK_GUESS_WINDOW", default=15 * 60)
SHARE_LINK_PURGE_SECONDS = env.int("SHARE_LINK_PURGE_SECONDS", default=300)
# The consultant's cookie: `__Host-` (Secure, Path=/, no Domain) wherever cookies are Secure; browsers
# refuse a `__Host-` cookie that is not, so plain-http development and tests use a plain name.
SHARE_LINK_COOKIE_SECURE = env.bool("SHARE_LINK_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
SHARE_LINK_COOKIE_NAME = "__Host-share_session" if SHARE_LINK_COOKIE_SECURE else "share_session"
if SHARE_LINK_DEFAULT_HOURS < 1 or SHARE_LINK_MAX_CODE_FAILURES < 1 or SHARE_LINK_GUESS_LIMIT < 1:
    raise ImproperlyConfigured("SHARE_LINK_* settings: default hours, code failures and guess limit must be >= 1.")
# Staff viewing their own trust's studies (exchange/viewing.py, for the built-in viewer and the advanced
# viewer alike): the copy is kept this long after its last use.
STAFF_VIEW_KEEP_SECONDS = env.int("STAFF_VIEW_KEEP_SECONDS", default=3600)
CELERY_BEAT_SCHEDULE["exchange-purge-staff-views"] = {"task": "exchange.purge_staff_views", "schedule": 600.0}

# DICOMweb under a capability and the advanced viewer (dicomweb/, docs/dicomweb.md).
INSTALLED_APPS.append("dicomweb")
# The register of copies, corrections that follow them, coercion on arrival (copies/, docs/copies.md).
INSTALLED_APPS.append("copies")
CELERY_TASK_ROUTES.update({"copies.*": {"queue": "routine"}})
# A consultant's bearer token for their own viewer lives this long (never past its link's expiry).
DICOMWEB_TOKEN_HOURS = env.int("DICOMWEB_TOKEN_HOURS", default=24)
if DICOMWEB_TOKEN_HOURS < 1 or STAFF_VIEW_KEEP_SECONDS < 60:
    raise ImproperlyConfigured("DICOMWEB_TOKEN_HOURS must be >= 1 and STAFF_VIEW_KEEP_SECONDS >= 60.")
# The largest STOW-RS request a consultant's viewer may send back into review (segmentations can be big).
DICOMWEB_STOW_MAX_BYTES = env.int("DICOMWEB_STOW_MAX_BYTES", default=512 * 1024 * 1024)
# OHIF's published build (frontend/ohif.py installs it at `make venv` and in the Dockerfile). Its bundles
# expect the site root, so WhiteNoise serves OHIF_DIR/dist there; its pages are dicomweb.ohif's.
OHIF_DIR = Path(env.str("OHIF_DIR", default=str(BASE_DIR / "frontend" / "ohif")))
WHITENOISE_ROOT = OHIF_DIR / "dist"
CELERY_BEAT_SCHEDULE["sharing-purge"] = {
    "task": "sharing.purge_share_links",
    "schedule": float(SHARE_LINK_PURGE_SECONDS),
}
# Staging and filing whose worker died (no word for two leases) go to a worker again (sharing/sweeper.py).
CELERY_BEAT_SCHEDULE["sharing-sweep-stalled"] = {"task": "sharing.sweep_stalled", "schedule": 60.0}

# Health you can see (portal/liveness.py, docs/health.md). Beat's scheduler notes a heartbeat every tick
# (it wakes at least every BEAT_HEARTBEAT_SECONDS / 3); the operations view warns when beat has not run for
# three intervals, or a queue tasks are routed to has no consumer (asked with a broadcast that waits
# HEALTH_INSPECT_TIMEOUT seconds, its answer kept HEALTH_CACHE_SECONDS).
CELERY_BEAT_SCHEDULER = "portal.beat:HeartbeatScheduler"
BEAT_HEARTBEAT_SECONDS = env.int("BEAT_HEARTBEAT_SECONDS", default=30)
HEALTH_INSPECT_TIMEOUT = env.float("HEALTH_INSPECT_TIMEOUT", default=0.3 if TESTING else 1.0)  # no worker in most tests
HEALTH_CACHE_SECONDS = env.int("HEALTH_CACHE_SECONDS", default=15)
# The queues the deployed workers are meant to serve (Procfile, Procfile.demo, docker-compose.yml), besides
# any a task or beat entry is routed to.
HEALTH_WORKER_QUEUES = env.list("HEALTH_WORKER_QUEUES", default=["urgent", "routine", "default"])
if BEAT_HEARTBEAT_SECONDS < 3 or not 0 < HEALTH_INSPECT_TIMEOUT <= 10 or HEALTH_CACHE_SECONDS < 0:
    raise ImproperlyConfigured(
        "BEAT_HEARTBEAT_SECONDS >= 3, 0 < HEALTH_INSPECT_TIMEOUT <= 10, HEALTH_CACHE_SECONDS >= 0."
    )

# Manifests for the region (manifests/, docs/fhir.md): a KOS manifest (XDS-I.b) and a FHIR ImagingStudy for
# each exchanged study, and the read-only FHIR API at /fhir/.
INSTALLED_APPS.append("manifests")
CELERY_TASK_ROUTES.update({"manifests.*": {"queue": "routine"}})
# The portal as the region's imaging document source: Retrieve Location UID (0040,E011) of every manifest.
# Unset, a UID derived from SITE_URL (stable for one deployment).
IMAGING_DOCUMENT_SOURCE_UID = env.str("IMAGING_DOCUMENT_SOURCE_UID", default="")
if IMAGING_DOCUMENT_SOURCE_UID and not re.fullmatch(r"[0-9]+(\.[0-9]+)*", IMAGING_DOCUMENT_SOURCE_UID):
    raise ImproperlyConfigured("IMAGING_DOCUMENT_SOURCE_UID must be a DICOM UID (digits and dots).")
# A FHIR search answers at most this many studies a page (`_count` may ask for fewer).
FHIR_MAX_COUNT = env.int("FHIR_MAX_COUNT", default=100)
if not 1 <= FHIR_MAX_COUNT <= 1000:
    raise ImproperlyConfigured("FHIR_MAX_COUNT must be between 1 and 1000.")
