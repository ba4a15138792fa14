"""Engage settings, read from the environment (django-environ).

Every real component has an embedded default so that one command runs on a laptop:
SQLite, the in-memory channel layer and eager Celery when nothing is set.
`.env.example` lists every variable.
"""

import os
import tempfile
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-only-key"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "engage",
    "segments",
    "messaging",
    "surveys",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "engage.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "engage.urls"
# Every path answers with and without a trailing slash (the URL patterns say so), never a redirect.
APPEND_SLASH = False
ASGI_APPLICATION = "engage.asgi.application"
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

# Database: PostgreSQL from DATABASE_URL, else an SQLite file beside the project.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'engage.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the demo server and a worker share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory, so that live-server tests can share the test database with Daphne;
    # one per test run, so that runs side by side do not share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"engage-test-{os.getpid()}.sqlite3")
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DB_POOL", default=True
):
    # Daphne runs each request's sync code in a thread of its own, and Django keeps connections
    # per thread: without a pool every request connects anew (a backend start and cold caches,
    # ~20 ms). The pool lends warm connections to whichever thread asks and takes them back at
    # the end of the request. Pooling replaces persistent connections.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A health check would cost a round trip at every checkout; the pool drops connections
    # that come back broken, and a request that meets a dead one answers 503 (retry helps).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

# Channel layer: Redis when REDIS_URL is set, else the in-memory layer (development only:
# it scans every group on each send and does not cross processes).
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py sets a 5 s socket timeout by default, which breaks the layer's
                # blocking reads (channels_redis#422): disable it.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
    CACHES = {
        "default": {
            # Django's RedisCache with one connection pool per process, not per thread.
            "BACKEND": "engage.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            # Short commands only: a Redis that hangs must not hang requests (callers fall
            # back, see engage.campaigns.campaigns_version).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: a broker when CELERY_BROKER_URL is set (REDIS_URL serves as broker too when only it is
# set and CELERY_USE_REDIS_BROKER is on); else eager mode runs tasks in-process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
# `celery -A engage worker -B` (or a separate `celery -A engage beat`) runs these.
CELERY_BEAT_SCHEDULE = {
    "campaigns-schedule": {"task": "engage.tasks.campaigns_schedule", "schedule": 60.0},
    "webhooks-send-overdue": {"task": "engage.tasks.webhooks_send_overdue", "schedule": 300.0},
    # Event partitions and retention (segments/partitions.py).
    "events-maintain": {"task": "segments.tasks.events_maintain", "schedule": 86400.0},
    "sentiment-score-pending": {"task": "surveys.tasks.sentiment_score_pending", "schedule": 300.0},
    "sentiment-alerts-check": {"task": "surveys.tasks.sentiment_alerts_check", "schedule": 3600.0},
    # Thompson sampling weights of adaptive campaigns (engage/kpis.py).
    "adaptive-allocations": {"task": "engage.tasks.adaptive_allocations", "schedule": 3600.0},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Engage limits.
ENGAGE_MAX_BODY_BYTES = env.int("ENGAGE_MAX_BODY_BYTES", default=1_048_576)
ENGAGE_MAX_BATCH_EVENTS = env.int("ENGAGE_MAX_BATCH_EVENTS", default=500)
# Time budget of one insight query (trends, funnels, KPIs); past it the API answers 422.
ENGAGE_INSIGHT_TIMEOUT_MS = env.int("ENGAGE_INSIGHT_TIMEOUT_MS", default=10_000)
# PostgreSQL work_mem inside one insight's transaction (sorts and hashes in memory); "" = server's.
ENGAGE_INSIGHT_WORK_MEM = env.str("ENGAGE_INSIGHT_WORK_MEM", default="128MB")
# PostgreSQL: a funnel over at least _MIN_EVENTS events (estimated) runs as this many statements
# at once, each over a range of people on its own pooled connection; 1 = one statement.
ENGAGE_INSIGHT_PARALLEL = env.int("ENGAGE_INSIGHT_PARALLEL", default=2)
ENGAGE_INSIGHT_PARALLEL_MIN_EVENTS = env.int("ENGAGE_INSIGHT_PARALLEL_MIN_EVENTS", default=100_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = ENGAGE_MAX_BODY_BYTES
# Covering indexes (`include`) serve PostgreSQL's index-only scans; on SQLite Django keeps their
# key columns, as intended, and would warn about it at every start.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
# Events (docs/ingestion.md, "Partitions and retention"): a retry whose dedup id was received
# longer ago than this is stored again; monthly partitions made ahead; rows per DELETE.
ENGAGE_EVENT_DEDUP_DAYS = env.int("ENGAGE_EVENT_DEDUP_DAYS", default=30)
ENGAGE_EVENT_PARTITIONS_AHEAD = env.int("ENGAGE_EVENT_PARTITIONS_AHEAD", default=3)
ENGAGE_RETENTION_BATCH = env.int("ENGAGE_RETENTION_BATCH", default=10_000)
# Sentiment of free-text answers: the analyzer class (dotted path); VADER, offline, by default.
ENGAGE_SENTIMENT_ANALYZER = env.str(
    "ENGAGE_SENTIMENT_ANALYZER", default="surveys.sentiment_analysis.VaderAnalyzer"
)

# Rate limits (engage.ratelimit): "N/s", "N/m", "N/h", "N/10s"…, or "off". Counted in Redis when
# REDIS_URL is set, else per process. Generous defaults: tighten them for your traffic.
# Collector: per client IP (a server-side tracker sends everything from one address).
ENGAGE_RATE_LIMIT_COLLECTOR = env.str("ENGAGE_RATE_LIMIT_COLLECTOR", default="120000/m")
# Events, identify, widget, deliveries and responses: per public key and client IP.
ENGAGE_RATE_LIMIT_PUBLIC = env.str("ENGAGE_RATE_LIMIT_PUBLIC", default="6000/m")
# Management and targeting APIs: per App (its secret key).
ENGAGE_RATE_LIMIT_SECRET = env.str("ENGAGE_RATE_LIMIT_SECRET", default="30000/m")
# Websocket connects: per public key and client IP (refused with close code 4429).
ENGAGE_RATE_LIMIT_WS_CONNECT = env.str("ENGAGE_RATE_LIMIT_WS_CONNECT", default="30000/m")


def _rates_check() -> None:
    from engage.ratelimit import SCOPE_SETTINGS, rate_parse

    for name in SCOPE_SETTINGS.values():
        try:
            rate_parse(globals()[name])
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from exc


_rates_check()

# Browser security. Outside DEBUG cookies are HTTPS-only; HSTS and trusting the proxy's
# X-Forwarded-Proto are opt-in because they depend on how TLS is terminated (docs/deploy.md).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
if env.bool("ENGAGE_BEHIND_TLS_PROXY", default=False):
    # Only behind a proxy that sets X-Forwarded-Proto itself (and strips clients' copies).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content Security Policy (django-csp) of Engage's own pages (admin, API docs); on outside
# DEBUG unless ENGAGE_CSP says otherwise. The admin uses only scripts and styles of its own.
ENGAGE_CSP = env.bool("ENGAGE_CSP", default=not DEBUG)
ENGAGE_CSP_DIRECTIVES: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
CONTENT_SECURITY_POLICY = (
    {
        "DIRECTIVES": ENGAGE_CSP_DIRECTIVES,
        # Data endpoints are never rendered as pages: no policy to send.
        "EXCLUDE_URL_PREFIXES": ["/api/v1/", "/i", "/com.snowplowanalytics.snowplow/"],
    }
    if ENGAGE_CSP
    else None
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "engage.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "engage.api.pagination.CursorPagination",
    "DEFAULT_THROTTLE_CLASSES": ["engage.api.throttling.AppKeyThrottle"],
    "PAGE_SIZE": 50,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Engage API",
    "DESCRIPTION": "In-app messaging and surveys: ingestion, targeting and management.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# CORS: the widget and the collector are called from the host app's origin with credentials.
# Which origins are allowed is decided per App (engage.cors), not by a static list.
CORS_ALLOW_CREDENTIALS = True
# The collector answers its own CORS (segments.api.views.collector).
CORS_URLS_REGEX = r"^/api/v1/.*$"
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "x-engage-key",
    "x-engage-user-hash",
    "x-engage-token",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
FORMS_URLFIELD_ASSUME_HTTPS = True
