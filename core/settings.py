"""Parlance settings.

Every setting that differs between machines comes from the environment, with a default that
runs on a fresh machine with no servers (SQLite + a filesystem Celery broker under var/).
docs/operations.md lists the variables and the production values.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PARLANCE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Production turns on HTTPS-only cookies, HSTS and the SSL redirect, demands a real secret key
# and host list, and refuses demo users.
PRODUCTION = env_bool("DJANGO_PRODUCTION", False)
DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY", "")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_PRODUCTION is on")
    # A single-machine install keeps a random key of its own under var/, never committed.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when DJANGO_PRODUCTION is on")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

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
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "core",
    "mlcore",
    "finance",
    "education",
    "entertainment",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    # Last, so it is the first to see a view's exception: a lost database answers 503, not 500.
    "core.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"
ASGI_APPLICATION = "core.asgi.application"

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
                "core.context_processors.navigation",
            ],
        },
    },
]

# Database: SQLite file by default; DATABASE_URL=postgres://... in CI and production.
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{VAR_DIR / 'parlance.sqlite3'}",
        conn_health_checks=True,
    )
}
# PostgreSQL connections are kept 60 s by each web thread and worker: a new one per request costs the server a
# process and the request several ms (bench/load.py, 20 clients on the finance pages: 184 requests/s and p95
# 220 ms with a connection per request, 449/s and 84 ms with them kept). Health checks replace a connection the
# server dropped before it is used.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get(
    "DATABASE_CONN_MAX_AGE", "0" if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else "60"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for locks instead of failing, and let
    # readers run beside the single writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that worker processes started by tests see the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-parlance.sqlite3")}
elif DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql") and not env_bool(
        "DATABASE_JIT", False):
    # PostgreSQL's JIT compiles the dashboards' one big read and costs more than it saves (measured: 0.8 s with it,
    # 0.5 s without, on 100k articles). Sent as a connection option; behind PgBouncer set it on the role instead.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.js from the plotly package, so no page needs a CDN.
    "core.staticfinders.PlotlyFinder",
]
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
# Outside production, serve straight from the apps' static folders: no collectstatic step.
WHITENOISE_USE_FINDERS = not PRODUCTION
MEDIA_ROOT = VAR_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Security. Production values pass `manage.py check --deploy --fail-level WARNING`.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (core.middleware): scripts only from this site; inline styles are allowed because a
# few templates use style attributes and Plotly inserts <style> elements.
PARLANCE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Demo users and data: only on a non-production install.
PARLANCE_DEMO_ALLOWED = not PRODUCTION

EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "parlance@localhost")
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("DJANGO_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 20

# REST API: token or session auth, OpenAPI schema by drf-spectacular.
# The default cache holds the API throttles' counters: per process unless it is shared, so production points every
# web process at one Redis (django's own backend; redis-py comes with celery[redis]).
CACHE_URL = os.environ.get("DJANGO_CACHE_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
    # Sessions are read from the shared cache and written through to the database (which keeps them if the
    # cache is flushed): one query less per request.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
elif CACHE_URL:
    raise ImproperlyConfigured(f"DJANGO_CACHE_URL must be a redis:// URL, not {CACHE_URL!r}")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "core.openapi.ParlanceAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # Per-client request rates (counted in the default cache, so per process unless CACHES is shared); the token
    # endpoint has its own, low rate against password guessing.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "120/minute"),
        "user": os.environ.get("API_THROTTLE_USER", "1200/minute"),
        "token": os.environ.get("API_THROTTLE_TOKEN", "10/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parlance API",
    "DESCRIPTION": "Push articles, read aggregates and reports, submit essays, request generations, poll jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"MlcoreTaskEnum": "mlcore.models.Task"},
}

# Celery. The default broker is kombu's filesystem transport under var/: it needs no server,
# keeps queued messages as files across worker restarts, and adds no write contention on
# the SQLite database (docs/operations.md has the comparison with the sqla transport).
CELERY_BROKER_DIR = Path(os.environ.get("PARLANCE_BROKER_DIR", VAR_DIR / "broker"))
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        "polling_interval": float(os.environ.get("CELERY_POLLING_INTERVAL", "0.2")),
    }
else:
    # Longer than the longest task (CELERY_TASK_TIME_LIMIT), or Redis would hand a running
    # task to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(timedelta(hours=7).total_seconds())}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_CACHE_BACKEND = "django-cache"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "mlcore.*": {"queue": "ml"},
    # Bulk inference of the apps runs beside training on the ml workers.
    "finance.score_articles": {"queue": "ml"},
    # One essay's grade is a single encoder pass: on `default`, where the Procfile keeps a worker that never
    # decodes, so a student's grade does not wait behind explanations and stories on the ml worker.
    "education.grade_version": {"queue": "default"},
    "education.calibrate": {"queue": "ml"},
    "education.calibration_finish": {"queue": "ml"},
    "education.tutor_embed_material": {"queue": "ml"},
    "education.tutor_sentence_vectors": {"queue": "ml"},  # the upgrade fill of migration 0010's sentence vectors
    "education.tutor_explain": {"queue": "ml"},  # the tutor model's explanation of an answer
    "entertainment.generate": {"queue": "ml"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = int(timedelta(hours=6).total_seconds())
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 300
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
# Gunicorn workers (core/gunicorn_conf.py) load the embedding model as they start, not on their first question.
PARLANCE_WARM_MODELS = env_bool("PARLANCE_WARM_MODELS", True)
# A worker writes a heartbeat row this often; /healthz calls a worker alive for 3 beats.
PARLANCE_WORKER_HEARTBEAT_SECONDS = float(os.environ.get("PARLANCE_WORKER_HEARTBEAT_SECONDS", "10"))
# The task ledger (core.TaskRun): claims per run before it fails; a queued run whose message has not been
# picked up this long, with its queue empty, is re-sent (a restarted Redis keeps nothing); done rows kept this long.
PARLANCE_TASK_MAX_ATTEMPTS = int(os.environ.get("PARLANCE_TASK_MAX_ATTEMPTS", "3"))
PARLANCE_TASK_RESEND_SECONDS = int(os.environ.get("PARLANCE_TASK_RESEND_SECONDS", "300"))
PARLANCE_TASK_RUNS_KEEP_DAYS = int(os.environ.get("PARLANCE_TASK_RUNS_KEEP_DAYS", "7"))

# education: tutor questions and essay versions one user may send per minute (counted from their rows); both
# reach a model at once or on the ml queue.
EDUCATION_TUTOR_QUESTIONS_PER_MINUTE = int(os.environ.get("EDUCATION_TUTOR_QUESTIONS_PER_MINUTE", "10"))
EDUCATION_ESSAYS_PER_MINUTE = int(os.environ.get("EDUCATION_ESSAYS_PER_MINUTE", "5"))
# The tutor's language model breaks close calls between the top two passages in the web process (about one
# question in five, ~1 s on 2 CPU cores; the model loads there as it starts, with PARLANCE_WARM_MODELS). False keeps
# the LM out of web processes.
EDUCATION_TUTOR_LIKELIHOOD_RERANK = env_bool("EDUCATION_TUTOR_LIKELIHOOD_RERANK", True)
# A calibration reads each graded essay with the tutor's language model too (its middle layer, half the model's
# layers, ~0.2 s an essay on 2 CPU cores) and the scorer weighs that beside the encoder's layers (docs/benchmarks.md,
# essays). False fits new calibrations without it; calibrations fitted with it keep reading it.
EDUCATION_ESSAY_LM = env_bool("EDUCATION_ESSAY_LM", True)

# entertainment: story and dialogue generations one writer may start per minute (counted from the job table)
ENTERTAINMENT_JOBS_PER_MINUTE = int(os.environ.get("ENTERTAINMENT_JOBS_PER_MINUTE", "6"))
# A running generation silent this long is taken as lost (its worker died) and failed, keeping its text.
ENTERTAINMENT_JOB_STALE_SECONDS = int(os.environ.get("ENTERTAINMENT_JOB_STALE_SECONDS", "120"))

# mlcore
MLCORE_HOME = Path(os.environ.get("MLCORE_HOME", VAR_DIR / "models"))
MLCORE_DEVICE = os.environ.get("MLCORE_DEVICE", "auto")
# Who generates on CPU: "auto" (llama.cpp on the model's GGUF when llama-cpp-python is installed and no LoRA
# adapter is applied, else transformers), "transformers", or "llamacpp" (an error when it cannot).
MLCORE_LM_BACKEND = os.environ.get("MLCORE_LM_BACKEND", "auto").lower()
# Encoder kinds served with dynamic int8 Linear layers on CPU ("none" for none): measured in docs/benchmarks.md.
MLCORE_CPU_INT8 = frozenset(env_list("MLCORE_CPU_INT8", "classifier")) - {"none"}
# Who runs encoders on CPU: "onnx" (ONNX Runtime on a graph exported once and cached under MLCORE_HOME/onnx,
# int8 for the kinds above; 1.1x torch's int8 sentences/s at the same PhraseBank accuracy, docs/benchmarks.md)
# or "torch". GPUs always run torch, and so does a model the exporter cannot trace.
MLCORE_ENCODER_BACKEND = os.environ.get("MLCORE_ENCODER_BACKEND", "onnx").lower()
if MLCORE_ENCODER_BACKEND not in {"torch", "onnx"}:
    raise ImproperlyConfigured(f"MLCORE_ENCODER_BACKEND must be torch or onnx, not {MLCORE_ENCODER_BACKEND!r}")
# A running training job with no progress for this long is taken as lost and requeued.
MLCORE_JOB_STALE_SECONDS = int(os.environ.get("MLCORE_JOB_STALE_SECONDS", "300"))

# Beat entries kept in settings are synced into the database scheduler, where the admin edits them.
CELERY_BEAT_SCHEDULE = {
    "core-recover-task-runs": {"task": "core.taskruns_recover", "schedule": 60.0},
    "mlcore-recover-lost-jobs": {"task": "mlcore.jobs_recover", "schedule": 60.0},
    "finance-poll-feeds": {"task": "finance.poll_feeds", "schedule": 15 * 60.0},
    "entertainment-recover-lost-generations": {"task": "entertainment.jobs_recover", "schedule": 60.0},
    "education-recover-stalled-materials": {"task": "education.materials_recover", "schedule": 5 * 60.0},
    "education-recover-lost-calibration-polls": {"task": "education.calibrations_recover", "schedule": 5 * 60.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
