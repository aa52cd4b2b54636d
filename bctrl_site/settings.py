"""Settings for bctrl, read from the environment (see .env.example).

With nothing set, everything runs on embedded defaults: SQLite under var/, the
in-memory channel layer, a filesystem Celery broker and files in a local folder.
"""

import atexit
import ipaddress
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from bctrl_site.serving import local_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def envbool(name: str, default: bool = False) -> bool:
    """A yes/no setting; a word it does not know stops the process (a typo such as
    BCTRL_PRODUCTION=ture must not quietly mean no)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a yes/no value: use one of {', '.join(TRUE_WORDS)} "
            f"or {', '.join(FALSE_WORDS)}."
        )
    return word in TRUE_WORDS


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in envstr(name, default).split(",") if part.strip()]


TESTING = "pytest" in sys.modules or envbool("BCTRL_TESTING")
PRODUCTION = envbool("BCTRL_PRODUCTION")

VAR_DIR = Path(envstr("BCTRL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    # Local installs keep a generated key under var/ so sessions and leases survive restarts.
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()
SECRET_KEY_FALLBACKS = envlist("SECRET_KEY_FALLBACKS")
# Fernet keys that encrypt browser profiles at rest, newest first (the first encrypts,
# all decrypt). Unset: one derived from SECRET_KEY (and its fallbacks decrypt).
BCTRL_PROFILE_KEYS = envlist("BCTRL_PROFILE_KEYS")

DEBUG = envbool("DEBUG", default=False)
# Where `make run` (manage.py serve) listens; SITE_URL, the public address in the links
# the API hands out, defaults to it (serve passes its own --host and --port on).
HOST = envstr("HOST", "127.0.0.1")
PORT = envint("PORT", 8000)
SITE_URL = (envstr("SITE_URL") or local_url(HOST, PORT)).rstrip("/")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "runs",
    "recordings",
    "viewers",
    "runtimes",
    "dashboard",
    "demo",
    "runtime_host",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "bctrl_site.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "bctrl_site.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "bctrl_site.urls"
ASGI_APPLICATION = "bctrl_site.asgi.application"
WSGI_APPLICATION = None

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

# Database: SQLite in WAL mode under var/ unless DATABASE_URL names a server.
DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # psycopg prepares a statement after it ran this many times, so hot queries (the lease
    # check, the runs list) skip planning. Behind a transaction-pooling PgBouncer set it
    # to "off": prepared statements do not survive a change of server connection.
    _prepare = envstr("DATABASE_PREPARE_THRESHOLD", "5")
    if _prepare.lower() != "off" and DATABASES["default"]["ENGINE"].endswith("postgresql"):
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = int(_prepare)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file, not :memory:, so a live ASGI server in another process sees test
            # data; one per test process, so two suites on one checkout do not collide.
            "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channels: Redis when REDIS_URL is set, else in-process memory. Of the two Redis layers,
# pub/sub is the default: it held live frames to 50 viewers best (benchmarks/README.md);
# BCTRL_CHANNEL_LAYER=core picks channels_redis' list-based core layer.
REDIS_URL = envstr("REDIS_URL")
BCTRL_CHANNEL_LAYER = envstr("BCTRL_CHANNEL_LAYER", "pubsub")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer"
            if BCTRL_CHANNEL_LAYER == "core"
            else "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": envstr("CHANNELS_PREFIX", "bctrl")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: Redis broker when REDIS_URL is set, else kombu's filesystem transport.
CELERY_BROKER_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
else:
    CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# `manage.py serve` (bctrl_site/supervisor.py) starts a child that exited again after this
# delay, doubled after each exit sooner than BCTRL_SERVE_STABLE_S after its start, up to the
# maximum; a child that ran that long before it exited starts again after the first delay.
BCTRL_SERVE_RESTART_DELAY_S = float(envstr("BCTRL_SERVE_RESTART_DELAY_S", "1"))
BCTRL_SERVE_RESTART_MAX_DELAY_S = float(envstr("BCTRL_SERVE_RESTART_MAX_DELAY_S", "30"))
BCTRL_SERVE_STABLE_S = float(envstr("BCTRL_SERVE_STABLE_S", "60"))

# Files: a local folder through Django's storage API.
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(VAR_DIR / "files")))
if TESTING and not envstr("MEDIA_ROOT"):
    # One folder per test session, shared with the live servers that tests fork.
    MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="bctrl-test-files-"))
    atexit.register(shutil.rmtree, MEDIA_ROOT, True)
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Of the npm packages, the browser loads rrweb's replayer bundle and its stylesheet.
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/rrweb", BASE_DIR / "node_modules/rrweb")]
# Cold tier of archived recordings (POST /api/v1/recordings/{id}/archive moves files here).
BCTRL_COLD_STORAGE_ROOT = Path(envstr("BCTRL_COLD_STORAGE_ROOT", str(VAR_DIR / "cold")))
if TESTING and not envstr("BCTRL_COLD_STORAGE_ROOT"):
    # As MEDIA_ROOT: one folder per test session, which the live servers share.
    BCTRL_COLD_STORAGE_ROOT = Path(tempfile.mkdtemp(prefix="bctrl-test-cold-"))
    atexit.register(shutil.rmtree, BCTRL_COLD_STORAGE_ROOT, True)
# Object storage (S3, R2, MinIO): with S3_BUCKET set, recordings, artifacts and exports
# live in that bucket instead of MEDIA_ROOT, and the cold tier in S3_COLD_BUCKET (or, without
# it, under "cold/" in the same bucket), written with S3_COLD_STORAGE_CLASS when set.
# Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else boto3's own chain (a role).
S3_BUCKET = envstr("S3_BUCKET")
S3_COLD_BUCKET = envstr("S3_COLD_BUCKET")
S3_COLD_STORAGE_CLASS = envstr("S3_COLD_STORAGE_CLASS")
S3_ENDPOINT_URL = envstr("S3_ENDPOINT_URL")
S3_REGION = envstr("S3_REGION")
S3_ADDRESSING_STYLE = envstr("S3_ADDRESSING_STYLE", "path" if S3_ENDPOINT_URL else "auto")
if not S3_BUCKET and (S3_COLD_BUCKET or S3_COLD_STORAGE_CLASS or S3_ENDPOINT_URL):
    raise ImproperlyConfigured(
        "S3_COLD_BUCKET, S3_COLD_STORAGE_CLASS and S3_ENDPOINT_URL need S3_BUCKET (the hot tier)."
    )
if S3_ADDRESSING_STYLE not in ("auto", "path", "virtual"):
    raise ImproperlyConfigured(
        f"S3_ADDRESSING_STYLE must be auto, path or virtual, not {S3_ADDRESSING_STYLE!r}."
    )


def object_storage(bucket: str, *, location: str = "", storage_class: str = "") -> dict[str, Any]:
    """The STORAGES entry of a bucket (or a prefix of one) on the configured endpoint."""
    return {
        "BACKEND": "bctrl_site.storage.ObjectStorage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": location,
            "endpoint_url": S3_ENDPOINT_URL or None,
            "region_name": S3_REGION or None,
            "addressing_style": S3_ADDRESSING_STYLE,
            "signature_version": "s3v4",
            "file_overwrite": False,
            "object_parameters": {"StorageClass": storage_class} if storage_class else {},
        },
    }


STORAGES = {
    "default": object_storage(S3_BUCKET)
    if S3_BUCKET
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "cold": object_storage(
        S3_COLD_BUCKET or S3_BUCKET,
        location="" if S3_COLD_BUCKET else "cold",
        storage_class=S3_COLD_STORAGE_CLASS,
    )
    if S3_BUCKET
    else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(BCTRL_COLD_STORAGE_ROOT), "base_url": None},
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if TESTING or DEBUG
        else "bctrl_site.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = TESTING or DEBUG
WHITENOISE_MANIFEST_STRICT = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# ModelBackend that refuses a username locked out after failed sign-ins (dashboard/signin.py).
AUTHENTICATION_BACKENDS = ["dashboard.signin.ThrottledModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:runs"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["runs.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["runs.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "runs.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["runs.api.throttles.ScopedThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "bctrl API",
    "DESCRIPTION": "Runs, events, commands, artifacts and recordings of hosted browsers.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": ["running", "completed", "failed"],
        "CommandStatusEnum": "runs.models.Command.Status",
        "ExportStatusEnum": "runs.models.FileExport.Status",
        "RunEndStatusEnum": ["completed", "failed"],
        "RecordingViewerStatusEnum": [
            "not_available",
            "preparing",
            "processing",
            "ready",
            "failed",
        ],
    },
}

# Limits on what the write API accepts.
BCTRL_MAX_BODY_BYTES = envint("BCTRL_MAX_BODY_BYTES", 5 * 1024 * 1024)
BCTRL_MAX_INFLATED_BYTES = envint("BCTRL_MAX_INFLATED_BYTES", 20 * 1024 * 1024)
BCTRL_MAX_EVENTS_PER_BATCH = envint("BCTRL_MAX_EVENTS_PER_BATCH", 1000)
BCTRL_MAX_EVENT_BYTES = envint("BCTRL_MAX_EVENT_BYTES", 256 * 1024)
BCTRL_MAX_ARTIFACT_BYTES = envint("BCTRL_MAX_ARTIFACT_BYTES", 200 * 1024 * 1024)
BCTRL_SSE_HEARTBEAT_SECONDS = envint("BCTRL_SSE_HEARTBEAT_SECONDS", 15)
BCTRL_SSE_POLL_SECONDS = float(envstr("BCTRL_SSE_POLL_SECONDS", "1.0"))
BCTRL_EVENTS_WAIT_MAX_MS = envint("BCTRL_EVENTS_WAIT_MAX_MS", 60_000)
# rrweb batches: full snapshots with inlined styles and images can be large.
BCTRL_RECORDING_MAX_BATCH_BYTES = envint("BCTRL_RECORDING_MAX_BATCH_BYTES", 10 * 1024 * 1024)
BCTRL_RECORDING_MAX_INFLATED_BYTES = envint("BCTRL_RECORDING_MAX_INFLATED_BYTES", 64 * 1024 * 1024)
BCTRL_RECORDING_MAX_EVENT_BYTES = envint("BCTRL_RECORDING_MAX_EVENT_BYTES", 16 * 1024 * 1024)
BCTRL_RECORDING_MAX_EVENTS_PER_BATCH = envint("BCTRL_RECORDING_MAX_EVENTS_PER_BATCH", 20_000)
# rrweb timestamps are taken from the run's start to now, each widened by this much for a
# recorder's clock that runs ahead or behind the server's; others are refused (422).
BCTRL_RECORDING_CLOCK_SKEW_S = envint("BCTRL_RECORDING_CLOCK_SKEW_S", 600)
# Request bodies over 8 MiB (read or inflated) parsed and stored at once per web process;
# another waits up to 5 s for its turn, then is answered 503 with Retry-After. One such
# body costs about 3.3 times its inflated size at its peak (orjson's parse, the objects,
# the stored copy): 210 MiB for a 64 MB rrweb batch. Parsing holds the GIL, so a second
# slot adds memory more than speed.
BCTRL_LARGE_BODIES_AT_ONCE = envint("BCTRL_LARGE_BODIES_AT_ONCE", 1)

# Rate limits (runs/api/throttles.py): "<count>/<s|min|hour|day>" per API key and per
# client address, or "off"; past one, 429 rate_limited with Retry-After. Counted in the
# cache below: Redis with REDIS_URL (shared by every web process), else process memory.
BCTRL_RATE_RUNTIME_START_PER_KEY = envstr("BCTRL_RATE_RUNTIME_START_PER_KEY", "60/min")
BCTRL_RATE_RUNTIME_START_PER_IP = envstr("BCTRL_RATE_RUNTIME_START_PER_IP", "300/min")
# Viewer leases (POST /v1/runs/{id}/recording, …/live) and seed 004's download URLs.
BCTRL_RATE_LEASE_PER_KEY = envstr("BCTRL_RATE_LEASE_PER_KEY", "300/min")
BCTRL_RATE_LEASE_PER_IP = envstr("BCTRL_RATE_LEASE_PER_IP", "1200/min")
# rrweb batches: a recorder posts one every few hundred ms per page.
BCTRL_RATE_INGEST_PER_KEY = envstr("BCTRL_RATE_INGEST_PER_KEY", "6000/min")
BCTRL_RATE_INGEST_PER_IP = envstr("BCTRL_RATE_INGEST_PER_IP", "30000/min")
# Sign-in (the dashboard's and the admin's): attempts per address, and a username that
# fails this many times from one address is locked out there for BCTRL_SIGN_IN_LOCKOUT_S.
BCTRL_RATE_SIGN_IN_PER_IP = envstr("BCTRL_RATE_SIGN_IN_PER_IP", "30/min")
BCTRL_SIGN_IN_MAX_FAILURES = envint("BCTRL_SIGN_IN_MAX_FAILURES", 5)
BCTRL_SIGN_IN_LOCKOUT_S = envint("BCTRL_SIGN_IN_LOCKOUT_S", 900)
# Reverse proxies in front of bctrl that append to X-Forwarded-For (0: none, the client
# address is the connection's).
BCTRL_TRUSTED_PROXIES = envint("BCTRL_TRUSTED_PROXIES", 0)
# (Tests keep the counts in memory, cleared between tests; tests of Redis set it.)
if REDIS_URL and not TESTING:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": envstr("CHANNELS_PREFIX", "bctrl"),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Lifetime of the signed download URLs of the recordings API (/api/v1/recordings/{id}/download).
BCTRL_DOWNLOAD_URL_TTL_S = envint("BCTRL_DOWNLOAD_URL_TTL_S", 15 * 60)
# Processing: a recording stuck this long is re-queued, and failed after this many tries.
BCTRL_RECORDING_PROCESSING_TIMEOUT_S = envint("BCTRL_RECORDING_PROCESSING_TIMEOUT_S", 600)
BCTRL_RECORDING_MAX_ATTEMPTS = envint("BCTRL_RECORDING_MAX_ATTEMPTS", 3)
# Recordings imported (POST /api/v1/rooms/{id}/recordings/import) or synced from a space's
# upstream Browser Run account (…/recordings/sync): the largest recording document (JSON,
# after gzip), the timeout of each connect and read of an upstream, the longest one upstream
# request may take (a large recording streams), and how many sessions one sync imports.
BCTRL_IMPORT_MAX_BYTES = envint("BCTRL_IMPORT_MAX_BYTES", 256 * 1024 * 1024)
BCTRL_UPSTREAM_TIMEOUT_S = float(envstr("BCTRL_UPSTREAM_TIMEOUT_S", "15"))
BCTRL_UPSTREAM_REQUEST_MAX_S = float(envstr("BCTRL_UPSTREAM_REQUEST_MAX_S", "600"))
BCTRL_UPSTREAM_SYNC_MAX_IMPORTS = envint("BCTRL_UPSTREAM_SYNC_MAX_IMPORTS", 50)
# Viewer-lease uses are tallied in memory and written this often (0: at every use).
BCTRL_LEASE_USE_FLUSH_S = float(envstr("BCTRL_LEASE_USE_FLUSH_S", "0" if TESTING else "1.0"))
DATA_UPLOAD_MAX_MEMORY_SIZE = BCTRL_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Security headers. Production adds HTTPS-only cookies and HSTS.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
if PRODUCTION:
    DEBUG = False
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", default=False)

# HSTS preload is a commitment for the whole domain that is hard to take back: opt in
# with SECURE_HSTS_PRELOAD=1 rather than by default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Viewer lease tokens are credentials in URL paths (/embed/<kind>/<token>): the filter of
# bctrl_site.logging rewrites them to [redacted] on the root handler and, at the source,
# in the loggers that name request paths. `manage.py serve` runs daphne with its access
# log sent to the `daphne.access` logger (python -m bctrl_site.webserver).
_REDACT = ["redact_embed_tokens"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_embed_tokens": {"()": "bctrl_site.logging.RedactEmbedTokens"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": _REDACT}
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": _REDACT},
        "django.server": {"filters": _REDACT},
        "daphne.access": {"filters": _REDACT},
        # The Python client (manage.py demo, the tests) logs every request it makes at INFO;
        # the command's own lines say what it does.
        "httpx": {"level": "WARNING"},
    },
}

# Runtime host (`manage.py runtime_host`, started by `make run`): the browsers it runs.
# Debian's binary behind its /usr/bin/chromium shell wrapper, which costs ~0.3 s a launch.
BCTRL_CHROMIUM_PATH = envstr(
    "BCTRL_CHROMIUM_PATH",
    "/usr/lib/chromium/chromium"
    if os.path.exists("/usr/lib/chromium/chromium")
    else "/usr/bin/chromium",
)
# Browsers one runtime host runs at once: by default one per core, the figure
# `make benchmark-capacity` measured (CPU is the limit: two recorded, busy runtimes hold
# every target on two cores, four do not; memory allows far more). benchmarks/README.md.
BCTRL_RUNTIME_MAX_BROWSERS = envint("BCTRL_RUNTIME_MAX_BROWSERS", os.cpu_count() or 1)
# A host takes no more starts than its available memory holds at this many MB a browser
# (0: capacity alone decides).
BCTRL_RUNTIME_BROWSER_MEMORY_MB = envint("BCTRL_RUNTIME_BROWSER_MEMORY_MB", 300)
# Longest ?waitMs= of POST /v1/runtimes/{id}/start (waiting for room on a full fleet).
BCTRL_RUNTIME_START_WAIT_MAX_MS = envint("BCTRL_RUNTIME_START_WAIT_MAX_MS", 60_000)
BCTRL_RUNTIME_HEARTBEAT_S = float(envstr("BCTRL_RUNTIME_HEARTBEAT_S", "2"))
# A runtime whose host has not heartbeated for this many heartbeats is marked failed.
BCTRL_RUNTIME_STALE_HEARTBEATS = envint("BCTRL_RUNTIME_STALE_HEARTBEATS", 3)
BCTRL_RUNTIME_LAUNCH_TIMEOUT_S = envint("BCTRL_RUNTIME_LAUNCH_TIMEOUT_S", 30)
BCTRL_RUNTIME_CLOSE_TIMEOUT_S = envint("BCTRL_RUNTIME_CLOSE_TIMEOUT_S", 10)

# Confinement of hosted browsers (runs/confinement.py, runtime_host/sandbox.py, egress.py).
# auto: in bubblewrap where it runs here, else unconfined with a warning; bwrap: required;
# off: never.
BCTRL_BROWSER_SANDBOX = envstr("BCTRL_BROWSER_SANDBOX", "bwrap" if PRODUCTION else "auto")
# Loopback and private networks a hosted browser may reach: `*` for all of them (the
# embedded default), or comma-separated CIDRs (none with BCTRL_PRODUCTION=1 unless listed).
BCTRL_BROWSER_PRIVATE_NETWORKS = envstr(
    "BCTRL_BROWSER_PRIVATE_NETWORKS", "" if PRODUCTION else "*"
).strip()
if BCTRL_BROWSER_PRIVATE_NETWORKS != "*":
    try:
        for _network in envlist("BCTRL_BROWSER_PRIVATE_NETWORKS"):
            ipaddress.ip_network(_network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"BCTRL_BROWSER_PRIVATE_NETWORKS: {exc}") from exc
# More servers of the deployment that hosted browsers must never reach (URLs, e.g. an
# object store or a metrics endpoint); its web server, database and Redis are built in.
BCTRL_BROWSER_BLOCKED_SERVICES = envlist("BCTRL_BROWSER_BLOCKED_SERVICES")

# Runtimes and the CDP proxy of connectUrl (runtimes.cdp_proxy).
# How long POST /v1/runtimes/{id}/start waits for a runtime host to launch the browser.
BCTRL_RUNTIME_START_TIMEOUT_S = float(envstr("BCTRL_RUNTIME_START_TIMEOUT_S", "30"))
# Pre-launched, never-used browsers each runtime host keeps ready for the next starts
# (0: every start launches its own).
BCTRL_RUNTIME_WARM_BROWSERS = int(envstr("BCTRL_RUNTIME_WARM_BROWSERS", "1"))
# A start its host has not taken within this many seconds moves to another live host.
BCTRL_RUNTIME_CLAIM_TIMEOUT_S = float(envstr("BCTRL_RUNTIME_CLAIM_TIMEOUT_S", "3"))
# How often an open CDP connection checks that its credential and run are still valid.
BCTRL_CDP_RECHECK_SECONDS = float(envstr("BCTRL_CDP_RECHECK_SECONDS", "2"))
# How long POST /v1/runs/{id}/screenshot waits for the browser.
BCTRL_CDP_SCREENSHOT_TIMEOUT_S = float(envstr("BCTRL_CDP_SCREENSHOT_TIMEOUT_S", "20"))
# Seconds POST /v1/runtimes/{id}/files waits for the runtime's host to put the file where
# the browser reaches it (202 with placed: false after that; the host still does).
BCTRL_RUNTIME_UPLOAD_WAIT_S = float(envstr("BCTRL_RUNTIME_UPLOAD_WAIT_S", "10"))
# Largest websocket message a CDP client may send (connectUrl): CDP messages (scripts,
# files set on inputs) exceed daphne's 1 MiB default. Also daphne's ceiling for every
# socket (`manage.py serve`); each route has its own limit (runtimes.routing).
BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES = envint("BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES", 256 * 1024 * 1024)

# Live view and takeover (runtimes.liveview, runtime_host.live).
# Where a runtime host sends screencast frames: a web process's websocket address.
# `manage.py serve` points its host at its own web server.
BCTRL_HOST_LINK_URL = envstr("BCTRL_HOST_LINK_URL") or local_url(HOST, PORT, "ws")
# Frames per second a host sends per watched tab at most (newer frames replace older).
# 15 keeps frame latency to 50 viewers under 50 ms at p95 on two cores; at 30 it was
# 76-106 ms (benchmarks/README.md, live view).
BCTRL_LIVE_MAX_FPS = float(envstr("BCTRL_LIVE_MAX_FPS", "15"))
# A tab is screencast while some viewer has said "watching" within this many seconds.
BCTRL_LIVE_WATCH_TTL_S = float(envstr("BCTRL_LIVE_WATCH_TTL_S", "6"))
# Largest message a viewer may send on the live websocket (input is small; the live page
# splits a long paste into several messages).
BCTRL_LIVE_MESSAGE_MAX_BYTES = envint("BCTRL_LIVE_MESSAGE_MAX_BYTES", 4096)
# Largest message a runtime host may send on its link: a screencast frame (JPEG of at
# most 1280x1280, typically 10-200 KB).
BCTRL_HOST_LINK_MESSAGE_MAX_BYTES = envint("BCTRL_HOST_LINK_MESSAGE_MAX_BYTES", 4 * 1024 * 1024)
# Video of recorded runs (runtime_host.video, recordings.video): frames per second a
# runtime host keeps of each recorded tab's screencast (only when the picture changes)
# and the frame rate of the MP4s encoded from them; 0 turns video off.
BCTRL_VIDEO_FPS = float(envstr("BCTRL_VIDEO_FPS", "5"))
# How often an open live view re-checks its lease and its run.
BCTRL_LIVE_RECHECK_S = float(envstr("BCTRL_LIVE_RECHECK_S", "2"))
# A human controller with no input for this long hands control back.
BCTRL_CONTROL_IDLE_S = float(envstr("BCTRL_CONTROL_IDLE_S", "120"))

# Handoffs (runs.handoffs): an automation asks a person to do a step in the live view.
# A handoff's timeout when its request names none, and the bounds of one it names.
BCTRL_HANDOFF_TIMEOUT_MS = envint("BCTRL_HANDOFF_TIMEOUT_MS", 15 * 60 * 1000)
BCTRL_HANDOFF_TIMEOUT_MIN_MS = 10_000
BCTRL_HANDOFF_TIMEOUT_MAX_MS = 24 * 60 * 60 * 1000
# How long GET /v1/runs/{id}/handoff/{hid}?waitMs= may wait at most.
BCTRL_HANDOFF_WAIT_MAX_MS = envint("BCTRL_HANDOFF_WAIT_MAX_MS", 60_000)

# Webhooks (runs.webhooks): a space's notices, POSTed signed to the URL it set.
# Seconds one attempt may take; delays before each retry (the last one given, it fails).
BCTRL_WEBHOOK_TIMEOUT_S = float(envstr("BCTRL_WEBHOOK_TIMEOUT_S", "5"))
BCTRL_WEBHOOK_RETRY_DELAYS_S = [
    float(part)
    for part in envstr("BCTRL_WEBHOOK_RETRY_DELAYS_S", "10,30,60,300,900,3600").split(",")
]
