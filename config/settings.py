"""Settings for Partnership Performance, all read from the environment.

With no environment at all the project runs locally: SQLite in the project folder, Celery tasks
in-process, DEBUG on. Production sets DATABASE_URL, REDIS_URL, SECRET_KEY and DEBUG=false.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name)
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else default


def database_from_url(url: str) -> dict:
    """DATABASES['default'] from postgres://user:pass@host:port/name?opt=v or sqlite:///path."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as dj-database-url reads them.
        name = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or ":memory:"}
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
            # Reuse connections between requests, but check them first so a restarted
            # PostgreSQL does not break the next request or task.
            "CONN_MAX_AGE": env_int("CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported")


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_TZ = True
LANGUAGE_CODE = "en-gb"
USE_I18N = False

INSTALLED_APPS = [
    # django.contrib.admin with a site for host staff only, behind the second factor.
    "partnerships.apps.HostAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # The built-in widget templates, for the project's form renderer (FORM_RENDERER).
    "django.forms",
    "django_htmx",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "partnerships.apps.PartnershipsConfig",
    "scoring.apps.ScoringConfig",
    "dashboards.apps.DashboardsConfig",
]

MIDDLEWARE = [
    # Before anything can read a body: a too-large one is refused from its declared length.
    "config.edge.RequestBodyLimitMiddleware",
    # Before the host check and the HTTPS redirect, for the container's health check.
    "config.edge.HealthCheckMiddleware",
    # First: everything after it (axes, the audit log) reads the client address from REMOTE_ADDR.
    "partnerships.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Cache-Control for signed-in users' pages, Permissions-Policy for all (not static files).
    "config.edge.ResponseHeadersMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After messages (they say why a session ended), OTP (request.user.is_verified()) and
    # htmx (an htmx request is sent on with HX-Redirect).
    "partnerships.middleware.SessionLifetimeMiddleware",
    "partnerships.two_factor.TwoFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out log-in into the lock-out answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "partnerships.context_processors.membership",
                "dashboards.context_processors.freshness",
            ],
        },
    },
]

# Forms and fields render through templates/forms/ (one markup for every form).
FORM_RENDERER = "config.forms.FormRenderer"

DATABASES = {
    "default": database_from_url(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Scoring runs and imports write in one transaction while pages keep reading.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Log-in throttling (django-axes): LOGIN_FAILURE_LIMIT failures of one user name from one
# address lock that pair for LOGIN_COOLOFF_MINUTES. Locking the pair, not the name, means an
# attacker elsewhere cannot lock a real user out. The address is REMOTE_ADDR only; behind a
# reverse proxy list it in TRUSTED_PROXIES (addresses or networks, e.g. "10.0.0.0/8") so that
# partnerships.middleware.TrustedProxyMiddleware takes the client from X-Forwarded-For — never
# set it without a proxy that overwrites that header, or clients could choose their address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out pairs before any check
    "django.contrib.auth.backends.ModelBackend",
]
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "partnerships.audit.client_address"
# The lock-out answer is the log-in page with one fixed message, whoever the name belongs to.
AXES_LOCKOUT_CALLABLE = "partnerships.security.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# The cool-off runs from the failure that locked the pair; tries while locked do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# Sign-ins are recorded in our own audit log (partnerships.AuditEvent).
AXES_DISABLE_ACCESS_LOG = True
# No "AXES: BEGIN" banner from every manage.py command, nor user agents in axes' own log lines.
AXES_VERBOSE = False

# Sessions: a new key at log-in (Django), an idle time-out renewed by every request, and an
# absolute time-out after log-in (partnerships.middleware.SessionLifetimeMiddleware), in seconds.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_ABSOLUTE_TIMEOUT = env_int("SESSION_ABSOLUTE_HOURS", 12) * 3600

# Two-factor authentication (TOTP, django-otp): host staff must set it up and use it when this
# is on; partner users may switch it on. Off by default in the demo (DEBUG) so a newcomer can
# look around; on by default in production.
TWO_FACTOR_REQUIRED_FOR_HOST = env_bool("TWO_FACTOR_REQUIRED_FOR_HOST", not DEBUG)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Partnership Performance")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# In development static files come straight from static/ (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))

MAILERS = {
    "default": {
        # Printed to the console in development; sent by SMTP in production (check --deploy
        # refuses a development backend there).
        "BACKEND": env_str("MAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
                           if DEBUG else "django.core.mail.backends.smtp.EmailBackend"),
    }
}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "partnerships@localhost")
# The site's own address, for links in e-mail sent by tasks (which have no request to ask).
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")
# How long the one-click unsubscribe link of a message works (it is signed with SECRET_KEY).
MAIL_UNSUBSCRIBE_MAX_AGE_DAYS = env_int("MAIL_UNSUBSCRIBE_MAX_AGE_DAYS", 60)
# The weekly digest goes out on this weekday (0 Sunday … 6 Saturday) at this local hour;
# the review-overdue alerts daily at MAIL_ALERTS_HOUR; new actions are looked for every
# MAIL_ACTION_SCAN_MINUTES minutes.
MAIL_DIGEST_WEEKDAY = env_int("MAIL_DIGEST_WEEKDAY", 1)
MAIL_DIGEST_HOUR = env_int("MAIL_DIGEST_HOUR", 7)
MAIL_ALERTS_HOUR = env_int("MAIL_ALERTS_HOUR", 6)
MAIL_ACTION_SCAN_MINUTES = env_int("MAIL_ACTION_SCAN_MINUTES", 10)
# Forgotten passwords (partnerships/password_reset.py): how long a reset link works (it works
# once), and how many requests an hour one address, or one client, may make before the page
# stops sending (it still answers the same).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_MINUTES", 60) * 60
PASSWORD_RESET_PER_EMAIL_PER_HOUR = env_int("PASSWORD_RESET_PER_EMAIL_PER_HOUR", 3)
PASSWORD_RESET_PER_CLIENT_PER_HOUR = env_int("PASSWORD_RESET_PER_CLIENT_PER_HOUR", 10)
# How long an invitation link works; it works once.
INVITATION_MAX_AGE_HOURS = env_int("INVITATION_MAX_AGE_HOURS", 72)

# Content-Security-Policy from the start: no inline scripts, no eval. Plotly injects <style>
# elements, so styles allow 'unsafe-inline' without a nonce (a nonce would disable it).
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The __Host- prefix makes browsers refuse these cookies unless secure, for this host only
    # and path /: a sibling subdomain cannot plant or overwrite them.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# Uploads: metric files may be large, but are streamed to disk above this size.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
METRIC_FILE_MAX_BYTES = env_int("METRIC_FILE_MAX_BYTES", 50 * 1024 * 1024)
# Any request body above this is refused before it is read (config.edge): the largest metric
# file plus room for the form around it. A reverse proxy in front should refuse the same
# (nginx: client_max_body_size 52m).
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", METRIC_FILE_MAX_BYTES + 1024 * 1024)
FILE_UPLOAD_HANDLERS = [
    "config.edge.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Seconds /healthz waits for the task queue's broker before calling it unreachable.
HEALTH_BROKER_TIMEOUT = env_int("HEALTH_BROKER_TIMEOUT", 2)
# The metrics API: observations per request (its body is also capped by the setting above).
METRICS_API_MAX_OBSERVATIONS = env_int("METRICS_API_MAX_OBSERVATIONS", 50_000)
# A running import silent this long lost its worker; an upload never confirmed is removed.
IMPORT_STALE_AFTER_SECONDS = env_int("IMPORT_STALE_AFTER_SECONDS", 600)
IMPORT_UNCONFIRMED_MAX_AGE_HOURS = env_int("IMPORT_UNCONFIRMED_MAX_AGE_HOURS", 24)
# What one metric file may hold, checked before its rows are read into memory: data rows,
# cells of the sheet's (or CSV's) rectangle, and what an XLSX may unpack to. Together they keep
# an import's peak memory below 1 GiB (bench/import_memory.py).
METRIC_FILE_MAX_ROWS = env_int("METRIC_FILE_MAX_ROWS", 1_000_000)
METRIC_FILE_MAX_CELLS = env_int("METRIC_FILE_MAX_CELLS", 8_000_000)
METRIC_FILE_MAX_UNPACKED_BYTES = env_int("METRIC_FILE_MAX_UNPACKED_BYTES", 300 * 1024 * 1024)
# The stored file of a failed import (a refused upload or API request) is deleted after this
# many days; the batch and its errors stay.
IMPORT_REFUSED_FILE_RETENTION_DAYS = env_int("IMPORT_REFUSED_FILE_RETENTION_DAYS", 30)
# No observation may exceed this magnitude (a row error on every import path). 10**12 is above
# any monthly figure of one partnership (a trillion USD, leads or days) yet far below where
# float64 fails: up to it a value with cents has at most 15 significant digits (what a
# spreadsheet keeps, and 1e-4 float resolution), and a billion of them sum to 1e21, nowhere
# near the 1.8e308 at which a PostgreSQL sum over double precision overflows.
METRIC_VALUE_MAX_ABS = env_int("METRIC_VALUE_MAX_ABS", 10**12)
if not 1 <= METRIC_VALUE_MAX_ABS <= 10**15:
    raise ImproperlyConfigured(
        "METRIC_VALUE_MAX_ABS must be between 1 and 10**15 (beyond it float64 loses whole "
        f"units), not {METRIC_VALUE_MAX_ABS}"
    )

# Celery. Without REDIS_URL every task runs in-process at once, so a newcomer needs nothing.
REDIS_URL = env_str("REDIS_URL")
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3 * 3600)
# Longer than the longest task, or Redis hands a still-running task to a second worker.
# A broker that does not answer costs seconds, not minutes: each connection attempt gives up
# after CELERY_BROKER_CONNECT_TIMEOUT (starting a run then says the queue is unavailable).
CELERY_BROKER_CONNECT_TIMEOUT = env_int("CELERY_BROKER_CONNECT_TIMEOUT", 2)
CELERY_BROKER_CONNECTION_TIMEOUT = CELERY_BROKER_CONNECT_TIMEOUT
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600),
    "socket_connect_timeout": CELERY_BROKER_CONNECT_TIMEOUT,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = CELERY_BROKER_CONNECT_TIMEOUT
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

SCORING_NIGHTLY_HOUR = env_int("SCORING_NIGHTLY_HOUR", 2)
SCORING_NIGHTLY_MINUTE = env_int("SCORING_NIGHTLY_MINUTE", 30)
# Agreements per chunk of the per-agreement stage; chunks are spread over Celery workers.
SCORING_CHUNK_SIZE = env_int("SCORING_CHUNK_SIZE", 250)
# A run whose heartbeat is older than this is marked failed: the last resort, for a run no
# worker takes at all or a chunk that hangs. Lost tasks are the supervisor's (below).
SCORING_STALE_AFTER_SECONDS = env_int("SCORING_STALE_AFTER_SECONDS", 600)
# The supervisor (scoring.tasks.scoring_supervise, on beat every SCORING_SUPERVISE_SECONDS, and
# at once when a run's task fails or its worker process is killed) queues lost tasks again: a
# started chunk or publication whose worker is gone, or, when nothing of a run has happened
# for SCORING_LOST_AFTER_SECONDS, the tasks the queue lost. A part started
# SCORING_TASK_ATTEMPTS times without finishing fails the run with its last error.
SCORING_SUPERVISE_SECONDS = env_int("SCORING_SUPERVISE_SECONDS", 15)
SCORING_LOST_AFTER_SECONDS = env_int("SCORING_LOST_AFTER_SECONDS", 20)
SCORING_TASK_ATTEMPTS = env_int("SCORING_TASK_ATTEMPTS", 3)
# A failed nightly run is tried again that night, this long after it failed, up to
# SCORING_NIGHTLY_ATTEMPTS runs in all, unless another run started meanwhile.
SCORING_NIGHTLY_ATTEMPTS = env_int("SCORING_NIGHTLY_ATTEMPTS", 3)
SCORING_NIGHTLY_RETRY_AFTER_SECONDS = env_int("SCORING_NIGHTLY_RETRY_AFTER_SECONDS", 300)
# Milliseconds to pause after each chunk's commit, and inside its transaction. Zero in real use;
# the worker fault tests and bench/scoring_faults.py set them so that a kill lands after a
# chunk committed, or while a chunk holds its lock.
SCORING_CHUNK_PAUSE_MS = env_int("SCORING_CHUNK_PAUSE_MS", 0)
SCORING_CHUNK_WORK_MS = env_int("SCORING_CHUNK_WORK_MS", 0)
# Close each month this many days after it ends (0: off, months are closed by hand). Checked
# daily, four hours after the nightly run; a close refused (scores not current) is tried again
# the next day, and the Months page says why.
MONTH_AUTO_CLOSE_DAYS = env_int("MONTH_AUTO_CLOSE_DAYS", 0)
CELERY_BEAT_SCHEDULE = {
    "close-months": {
        "task": "scoring.tasks.months_auto_close",
        "schedule": crontab(hour=(SCORING_NIGHTLY_HOUR + 4) % 24, minute=SCORING_NIGHTLY_MINUTE),
    },
    "nightly-scoring": {
        "task": "scoring.tasks.scoring_nightly",
        "schedule": crontab(hour=SCORING_NIGHTLY_HOUR, minute=SCORING_NIGHTLY_MINUTE),
    },
    "supervise-scoring-runs": {
        "task": "scoring.tasks.scoring_supervise",
        "schedule": float(SCORING_SUPERVISE_SECONDS),
        # A pass that waited in the queue longer than the interval is replaced by the next.
        "options": {"expires": float(SCORING_SUPERVISE_SECONDS)},
    },
    "maintain-imports": {
        "task": "partnerships.tasks.import_batches_maintain",
        "schedule": crontab(minute="*/5"),
    },
    # E-mail: the weekly digest, the daily review-overdue alerts, actions newly assigned.
    "mail-weekly-digest": {
        "task": "scoring.tasks.mail_weekly_digests",
        "schedule": crontab(day_of_week=MAIL_DIGEST_WEEKDAY, hour=MAIL_DIGEST_HOUR, minute=0),
    },
    "mail-review-overdue-alerts": {
        "task": "scoring.tasks.mail_review_overdue_alerts",
        "schedule": crontab(hour=MAIL_ALERTS_HOUR, minute=0),
    },
    "mail-action-alerts": {
        "task": "partnerships.tasks.mail_action_alerts",
        "schedule": crontab(minute=f"*/{MAIL_ACTION_SCAN_MINUTES}"),
    },
    # What the pages show of a newly published run, computed before anyone asks for it.
    "keep-pages-of-the-published-run": {
        "task": "dashboards.tasks.pages_warm",
        "schedule": crontab(minute="*/2"),
    },
    # What-if: the open months' period values, read again after imports and closes, so that
    # the first simulation afterwards answers at once.
    "keep-whatif-period-values": {
        "task": "scoring.tasks.whatif_warm",
        "schedule": crontab(minute="*/10"),
    },
}

# The cache: what the pages keep of a published run. Its own Redis database
# (REDIS_CACHE_URL), so that emptying it never drops Celery's queued tasks; REDIS_URL's when
# not set. Everything in it can be computed again, so a cache that cannot be reached costs time,
# not an error page (config.cache.FailSoftRedisCache): it is skipped for CACHE_RETRY_SECONDS.
REDIS_CACHE_URL = env_str("REDIS_CACHE_URL") or REDIS_URL
CACHES = {
    "default": (
        {"BACKEND": "config.cache.FailSoftRedisCache", "LOCATION": REDIS_CACHE_URL,
         "KEY_PREFIX": "pp",
         "OPTIONS": {"RETRY_AFTER": env_int("CACHE_RETRY_SECONDS", 10),
                     "socket_connect_timeout": 0.5, "socket_timeout": 2.0}}
        if REDIS_CACHE_URL
        # Per process; room for what the pages keep of a run (a few keys per agreement).
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
              "OPTIONS": {"MAX_ENTRIES": 20_000}}
    )
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
