"""Django settings: one module, every value read through `orchestrator.config` (environment > profile > default).

A malformed value never raises here: it falls back to a safe value and is reported as one line by the
`orchestrator.E001` system check (see apps/core/checks.py), so start-up says what is wrong.
"""

from __future__ import annotations

import secrets
import socket
import sys
from pathlib import Path
from typing import Any

import dj_database_url

from orchestrator import config

BASE_DIR = Path(__file__).resolve().parent.parent
CONFIG_PROBLEMS: list[str] = config.problems()


def _setting(name: str) -> str | None:
    try:
        value = config.get(name)
    except config.ConfigError:
        return config.SETTINGS[name].default
    if any(problem.startswith(name + " ") for problem in CONFIG_PROBLEMS):
        return config.SETTINGS[name].default
    return value


ORCHESTRATOR_HOME = config.home_ensure()  # created 0700 (docs/security.md)


def _secret_key() -> str:
    configured = _setting("ORCHESTRATOR_SECRET_KEY")
    if configured:
        return configured
    path = ORCHESTRATOR_HOME / "secret_key"
    try:
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(50)
        config.private_file_write(path, key)
        return key
    except OSError:
        return secrets.token_urlsafe(50)


SECRET_KEY = _secret_key()
# Keys of block secrets (apps/blocks/encryption.py): comma-separated, the first encrypts; None = the key file.
ENCRYPTION_KEYS = _setting("ORCHESTRATOR_ENCRYPTION_KEY")
DEBUG = (_setting("ORCHESTRATOR_DEBUG") or "").lower() in ("1", "true", "yes", "on")


def _allowed_hosts() -> list[str]:
    """The Host headers the server answers (others get 400: a DNS rebinding page cannot reach the API).
    ORCHESTRATOR_ALLOWED_HOSTS, else the loopback names and the host `server start` listens on; listening on
    every address (0.0.0.0, ::) adds the machine's host name and FQDN."""
    configured = _setting("ORCHESTRATOR_ALLOWED_HOSTS")
    if configured:
        return [host.strip() for host in configured.split(",") if host.strip()]
    hosts = ["localhost", "127.0.0.1", "[::1]"]
    listening = (config.listen_host() or "").strip("[]").lower()
    if listening in ("0.0.0.0", "::"):
        hosts += [socket.gethostname().lower(), socket.getfqdn().lower()]
    elif listening:
        hosts.append(f"[{listening}]" if ":" in listening else listening)  # an IPv6 address as Host writes it
    return list(dict.fromkeys(host for host in hosts if host))


ALLOWED_HOSTS = _allowed_hosts()

# Headers on every page and API answer: no MIME sniffing, no referrer beyond this site, no framing.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# ORCHESTRATOR_HTTPS: the server is reached through a TLS proxy that sets X-Forwarded-Proto (only such a proxy
# must reach it: the header is trusted). Cookies are then sent over https only, browsers are told to use https
# for a year (HSTS), and plain http is redirected, except the health check that load balancers call directly.
# `manage.py check --deploy` is clean with it (and a secret key of your own).
HTTPS = (_setting("ORCHESTRATOR_HTTPS") or "false").lower() in ("1", "true", "yes", "on")
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 86400
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Only says the site may be submitted to browsers' preload lists; nothing is submitted.
    SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    "apps.accounts.apps.AdminSiteConfig",  # django.contrib.admin, open to every role (apps/accounts/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by the server itself: /api/docs/ needs no internet
    "apps.core",
    "apps.accounts",
    "apps.events",
    "apps.orchestration",
    "apps.flows",
    "apps.runs",
    "apps.logs",
    "apps.concurrency",
    "apps.deployments",
    "apps.work_pools",
    "apps.blocks",
    "apps.notifications",
    "django_celery_beat",
    "apps.server_services",
    "apps.ui",
    "apps.live",
]

MIDDLEWARE = [
    # First, so that its process_exception runs last: a view's lost database connection becomes a 503 JSON error.
    "apps.core.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
ASGI_APPLICATION = "orchestrator.asgi.application"
WSGI_APPLICATION = "orchestrator.wsgi.application"

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


def _database(url: str) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(dj_database_url.parse(url))
    if parsed["ENGINE"] == "django.db.backends.sqlite3":
        Path(parsed["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        parsed["OPTIONS"] = {
            # WAL lets readers run beside the writer; IMMEDIATE takes the write lock when a transaction
            # starts, so two writers queue on the busy timeout instead of failing with "database is locked"
            # when a read lock cannot be upgraded.
            "timeout": float(_setting("ORCHESTRATOR_SQLITE_BUSY_TIMEOUT") or 30),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
        parsed["TEST"] = {"NAME": str(Path(parsed["NAME"]).with_suffix(".test.db"))}
        # Opening a SQLite connection (and running the PRAGMAs) costs more than most requests: keep it.
        parsed["CONN_MAX_AGE"] = None
    else:
        # Django's backend, with a health check of reused connections that costs no round trip.
        parsed["ENGINE"] = "apps.core.db_backends.postgresql"
        parsed["CONN_MAX_AGE"] = 60
        parsed["CONN_HEALTH_CHECKS"] = True
        # Who holds a connection, as pg_stat_activity (and `server database reset`) shows it.
        program = " ".join([Path(sys.argv[0]).name, *sys.argv[1:3]]) if sys.argv and sys.argv[0] else "python"
        parsed.setdefault("OPTIONS", {}).setdefault("application_name", f"orchestrator: {program}"[:63])
    return parsed


DATABASES = {"default": _database(_setting("ORCHESTRATOR_DATABASE_URL") or config.get_default_database_url())}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGIN_URL = "ui:login"  # for every role (the admin's own login is the same form, at /admin/login/)
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = ORCHESTRATOR_HOME / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

API_MAX_BODY_BYTES = int(float(_setting("ORCHESTRATOR_API_MAX_BODY_BYTES") or 10485760))
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.core.api.negotiation.SingleRendererNegotiation",
    "DEFAULT_PARSER_CLASSES": ["apps.core.api.parsers.StrictJSONParser"],
    # Who may call the API (apps/accounts/authentication.py, docs/security.md): keys, in-process calls, sessions.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiKeyAuthentication",
        "apps.accounts.authentication.ApiSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.authentication.ScopePermission"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.KeysetPagination",
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.exception_handler",
    "STRICT_JSON": True,
    "COERCE_DECIMAL_TO_STRING": False,
    "DATETIME_FORMAT": "iso-8601",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Orchestrator API",
    "DESCRIPTION": "Flows, runs, states, logs and the orchestration engine's responses.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page are the API's: a key or a logged-in user with a role reads them.
    "SERVE_PERMISSIONS": ["apps.accounts.authentication.ScopePermission"],
    "SERVE_AUTHENTICATION": [
        "apps.accounts.authentication.ApiKeyAuthentication",
        "apps.accounts.authentication.ApiSessionAuthentication",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets that two fields share a name with: named after what they are (`check --deploy` warns otherwise).
    "ENUM_NAME_OVERRIDES": {
        "ApiKeyScopeEnum": "apps.accounts.models.Scope.choices",
        "CollisionStrategyEnum": "apps.deployments.models.CollisionStrategy",
        "CollisionStrategyValueEnum": "apps.deployments.models.CollisionStrategy.values",
        "StateTypeValueEnum": "orchestrator.states.StateType",
        "WorkPoolTypeEnum": "apps.work_pools.models.WorkPoolType",
    },
}

# API keys (docs/security.md): required unless ORCHESTRATOR_API_AUTH is off. An address whose key checks fail
# API_AUTH_FAILURE_LIMIT times within the window gets 429 for its keyed requests until the window passes.
API_AUTH = (_setting("ORCHESTRATOR_API_AUTH") or "on").lower() in ("1", "true", "yes", "on")
API_AUTH_FAILURE_LIMIT = 20
API_AUTH_FAILURE_WINDOW_SECONDS = 60.0

LOG_LEVEL = (_setting("ORCHESTRATOR_LOGGING_LEVEL") or "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "orchestrator": {"level": LOG_LEVEL, "handlers": ["console"], "propagate": False},
        "apps": {"level": LOG_LEVEL, "handlers": ["console"], "propagate": False},
    },
}

# Orchestration tunables (documented in the README's configuration table).
ORCHESTRATION_SCHEDULED_START_TOLERANCE_SECONDS = 1.0
ORCHESTRATION_CONCURRENCY_WAIT_SECONDS = 1.0
API_DEFAULT_PAGE_SIZE = 200
API_MAX_PAGE_SIZE = 1000

# The scheduler (apps/deployments, docs/scheduler.md): runs are created ahead up to the horizon (kept between
# one hour and 100 days), at least MIN_RUNS and at most MAX_RUNS per schedule; Scheduled runs this many
# seconds past their time are marked Late.
ORCHESTRATOR_SCHEDULER_HORIZON_SECONDS = min(
    max(float(_setting("ORCHESTRATOR_SCHEDULER_HORIZON_SECONDS") or 86400), 3600.0), 100 * 86400.0
)
ORCHESTRATOR_SCHEDULER_MIN_RUNS = max(1, int(float(_setting("ORCHESTRATOR_SCHEDULER_MIN_RUNS") or 3)))
ORCHESTRATOR_SCHEDULER_MAX_RUNS = max(
    ORCHESTRATOR_SCHEDULER_MIN_RUNS, int(float(_setting("ORCHESTRATOR_SCHEDULER_MAX_RUNS") or 100))
)
ORCHESTRATOR_SCHEDULER_MAX_HORIZON_SECONDS = 100 * 86400.0
ORCHESTRATOR_LATE_RUNS_GRACE_SECONDS = float(_setting("ORCHESTRATOR_LATE_RUNS_GRACE_SECONDS") or 15)

# Work pools (apps/work_pools, docs/workers.md): a worker whose last heartbeat is older than this is offline, and
# the zombies / cancellation_cleanup services end its runs.
ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS = float(_setting("ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS") or 30)
# Concurrency leases (apps/concurrency, docs/concurrency.md): a slot is a lease that expires unless its holder
# renews it (the SDK renews at a third of this), so the slots of a process that died free within this time. An
# acquire waits on the server for a free slot up to ACQUIRE_WAIT seconds (then the client asks again), re-reading
# the database every POLL seconds for releases made by other processes.
ORCHESTRATOR_CONCURRENCY_LEASE_SECONDS = max(1.0, float(_setting("ORCHESTRATOR_CONCURRENCY_LEASE_SECONDS") or 30))
ORCHESTRATOR_CONCURRENCY_ACQUIRE_WAIT_SECONDS = 10.0
ORCHESTRATOR_CONCURRENCY_ACQUIRE_POLL_SECONDS = 0.15
# At most this many acquires of one server process wait at once (each holds one of its 4 request threads);
# the others wait one poll interval and answer 423 (the client asks again).
ORCHESTRATOR_CONCURRENCY_ACQUIRE_WAITERS = 2
# The run page's "Why is this run waiting?" panel (docs/waiting.md) is re-read on each state change of the run and
# this often while the run waits: what holds it (a paused pool, a busy limit, no worker) changes without one.
ORCHESTRATOR_UI_WAITING_REFRESH_SECONDS = float(_setting("ORCHESTRATOR_UI_WAITING_REFRESH_SECONDS") or 3)
# Celery pools (docs/workers.md): a run is sent to its pool's Celery queue once it is due within the horizon
# (Redis redelivers messages unacknowledged for an hour, so ETAs stay short); a run still Scheduled this long
# after its start time and its last sending is sent again, then after doubling delays (a lost message).
ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS = float(_setting("ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS") or 3600)
ORCHESTRATOR_CELERY_REDISPATCH_SECONDS = 30.0

# The event stream (apps/events, docs/events.md): each server process polls it this often for its consumers;
# a commit in the same process wakes it at once.
ORCHESTRATOR_EVENTS_POLL_SECONDS = max(0.005, float(_setting("ORCHESTRATOR_EVENTS_POLL_SECONDS") or 0.05))

# Notifications (apps/notifications, docs/notifications.md): deliveries are sent from a durable outbox by a thread
# of each server process, polling this often (woken at once by its own process's new deliveries); a failed send is
# retried after RETRY_SECONDS, doubling up to RETRY_MAX_SECONDS, ATTEMPTS times in all. UI_URL prefixes the links.
ORCHESTRATOR_NOTIFICATIONS_ATTEMPTS = max(1, int(float(_setting("ORCHESTRATOR_NOTIFICATIONS_ATTEMPTS") or 5)))
ORCHESTRATOR_NOTIFICATIONS_RETRY_SECONDS = float(_setting("ORCHESTRATOR_NOTIFICATIONS_RETRY_SECONDS") or 2)
ORCHESTRATOR_NOTIFICATIONS_RETRY_MAX_SECONDS = float(_setting("ORCHESTRATOR_NOTIFICATIONS_RETRY_MAX_SECONDS") or 300)
ORCHESTRATOR_NOTIFICATIONS_TIMEOUT_SECONDS = float(_setting("ORCHESTRATOR_NOTIFICATIONS_TIMEOUT_SECONDS") or 10)
ORCHESTRATOR_NOTIFICATIONS_POLL_SECONDS = max(0.01, float(_setting("ORCHESTRATOR_NOTIFICATIONS_POLL_SECONDS") or 0.5))
_API_URL = (_setting("ORCHESTRATOR_API_URL") or "").rstrip("/")
ORCHESTRATOR_UI_URL = (
    _setting("ORCHESTRATOR_UI_URL")
    or config.server_base_url()
    or (_API_URL.removesuffix("/api") if _API_URL.endswith("/api") else None)
    or "http://127.0.0.1:4200"
).rstrip("/")

# Live updates (apps/live, docs/live.md): websockets are fed through a channel layer, in memory in each server
# process by default; ORCHESTRATOR_REDIS_URL makes it Redis (several processes or hosts, one publisher per event).
# A connection more than LIVE_CHANNEL_CAPACITY messages behind loses the newest (its page re-reads the REST API).
LIVE_REDIS_URL = _setting("ORCHESTRATOR_REDIS_URL") or None
LIVE_CHANNEL_CAPACITY = 10_000
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [LIVE_REDIS_URL], "prefix": "orchestrator:live", "capacity": LIVE_CHANNEL_CAPACITY},
        }
        if LIVE_REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": LIVE_CHANNEL_CAPACITY}}
    )
}

# Server services (apps/server_services, docs/services.md): Celery Beat schedules them, a Celery worker runs them.
# ORCHESTRATOR_BROKER_URL names a broker server (redis://, amqp://); unset (or filesystem://), the broker is
# embedded: message files under $ORCHESTRATOR_HOME/broker, no server needed (one machine only).
_BROKER_URL = _setting("ORCHESTRATOR_BROKER_URL")
SERVICES_EMBEDDED_BROKER = not _BROKER_URL or _BROKER_URL.startswith("filesystem:")
# A host name only keeps kombu from warning that none was given; the files are in the folder below.
CELERY_BROKER_URL = "filesystem://localhost/" if SERVICES_EMBEDDED_BROKER else _BROKER_URL
CELERY_BROKER_TRANSPORT = "apps.server_services.broker:Transport" if SERVICES_EMBEDDED_BROKER else None
# How often a worker on the embedded broker looks at its queue folder when it is empty.
ORCHESTRATOR_BROKER_POLL_SECONDS = float(_setting("ORCHESTRATOR_BROKER_POLL_SECONDS") or 0.5)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"folder": str(ORCHESTRATOR_HOME / "broker"), "polling_interval": ORCHESTRATOR_BROKER_POLL_SECONDS}
    if SERVICES_EMBEDDED_BROKER
    else {}
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Services record their outcome in the database (ServiceRun): no result backend.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = None
# Its own queue name, so another Celery application sharing the broker never takes these tasks.
CELERY_TASK_DEFAULT_QUEUE = "orchestrator"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Remote control broadcasts leave files for every worker that ever ran on the embedded broker; not needed there.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = not SERVICES_EMBEDDED_BROKER
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "apps.server_services.beat:ServiceScheduler"
# Default intervals (seconds) by service name, replacing the registry's (apps/server_services/registry.py). An interval
# changed in the admin (Periodic tasks) is kept over these.
SERVICE_INTERVALS: dict[str, int] = {}
# How many ServiceRun rows are kept per service (newest first).
SERVICE_RUN_HISTORY = 100
# The retention service deletes finished runs (with their task runs, states and logs), logs and outbox events
# older than this many days; 0 keeps everything.
RETENTION_DAYS = int(_setting("ORCHESTRATOR_RETENTION_DAYS") or 30)
# Rows deleted per transaction (short transactions leave SQLite's write lock free for the API in between), and
# the most seconds one retention pass spends deleting: the rest waits for the next pass.
RETENTION_BATCH_SIZE = max(1, int(_setting("ORCHESTRATOR_RETENTION_BATCH_SIZE") or 500))
RETENTION_PASS_SECONDS = float(_setting("ORCHESTRATOR_RETENTION_PASS_SECONDS") or 60)
# On SQLite, a singleton service's pass holds a lease this long, renewed while it runs: a server killed mid-pass
# holds the service back at most this long (on PostgreSQL the advisory lock ends with its connection).
SERVICE_LEASE_SECONDS = float(_setting("ORCHESTRATOR_SERVICE_LEASE_SECONDS") or 15)

# `orchestrator server start` (orchestrator/server.py, docs/server.md): the threads of the services' Celery worker
# (Beat runs on a thread of the same process), how long the processes get to stop on Ctrl+C before they are
# killed, and how long after its start a process that exits counts as failing to start (the server stops rather
# than restart it in a loop).
ORCHESTRATOR_SERVICES_CONCURRENCY = max(1, int(_setting("ORCHESTRATOR_SERVICES_CONCURRENCY") or 4))
ORCHESTRATOR_SERVER_STOP_GRACE_SECONDS = float(_setting("ORCHESTRATOR_SERVER_STOP_GRACE_SECONDS") or 10)
ORCHESTRATOR_SERVER_STARTUP_SECONDS = float(_setting("ORCHESTRATOR_SERVER_STARTUP_SECONDS") or 10)
