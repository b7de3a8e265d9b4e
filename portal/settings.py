"""The one settings module. Every deployment differs by environment variables, never by files."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from portal import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = embedded.VAR_DIR


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def _env_number(name: str, default, cast, kind: str):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return cast(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {kind}, not {value!r}") from None


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "a whole number")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_secret(name: str) -> str | None:
    """NAME, or the content of the file NAME_FILE names (for container secrets)."""
    if os.environ.get(name):
        return os.environ[name]
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    return None


def database_from_url(url: str, setting: str = "DATABASE_URL") -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"{setting} must be a postgresql:// URL (PostgreSQL + pgvector)")
    query = parse_qs(parsed.query)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DATABASE_NAME") or unquote(parsed.path.lstrip("/")) or "portal",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": query.get("host", [parsed.hostname or ""])[0],
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        # Automatic prepared statements switch the filtered vector query to a much slower generic plan
        # (docs/architecture.md); every query is planned with its real values instead.
        "OPTIONS": {"prepare_threshold": None},
        "TEST": {"NAME": os.environ.get("DATABASE_TEST_NAME") or None},
    }


# --- Core -----------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
PRODUCTION = env_bool("PORTAL_PRODUCTION", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set in production")
    # Development: a random key kept under var/, never committed.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    SECRET_KEY = key_file.read_text().strip()

ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "portal",
    "search",
]

MIDDLEWARE = [
    # The header middleware come first (outermost), so that a response made by a later middleware (the
    # HTTPS redirect, a refused host, a CSRF failure) carries the headers too (tests/portal/test_security_headers.py).
    "portal.middleware.ResponseHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files answer here, inside the header middleware above, so they carry the same headers.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Before the session rules: the API's requests carry a token, never a session (portal/api_middleware.py).
    "portal.api_middleware.ApiWithoutSessionMiddleware",
    "accounts.middleware.SessionSecurityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Innermost: a page the object store could not serve answers 503 with a plain message.
    "portal.middleware.MediaUnavailableMiddleware",
]

# A strict Content-Security-Policy: no inline script or style anywhere in the portal.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

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
                "search.context_processors.review_queue",
                "search.context_processors.watchlist_alerts",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(embedded.database_url())}
# Read replicas (docs/read-replicas.md): hot standbys streaming from the primary, as replica_1, replica_2, ….
# Only the reads of an explicit scope go to them (portal/db_routing.py); writes never do.
DATABASE_REPLICA_CONNECT_TIMEOUT = env_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 2)
DATABASE_REPLICA_RETRY_SECONDS = env_int("DATABASE_REPLICA_RETRY_SECONDS", 30)
DATABASE_REPLICA_MAX_LAG_SECONDS = env_float("DATABASE_REPLICA_MAX_LAG_SECONDS", 30.0)
if DATABASE_REPLICA_CONNECT_TIMEOUT < 1:
    raise ImproperlyConfigured("DATABASE_REPLICA_CONNECT_TIMEOUT must be at least 1 (seconds)")
_replica_urls = [url.strip() for url in os.environ.get("DATABASE_REPLICA_URLS", "").split(",") if url.strip()]
for _number, _url in enumerate(_replica_urls, start=1):
    _replica = database_from_url(_url, "DATABASE_REPLICA_URLS")
    _replica["OPTIONS"] = _replica["OPTIONS"] | {"connect_timeout": DATABASE_REPLICA_CONNECT_TIMEOUT}
    # The test run creates no database on a replica: a replica alias is the primary's test database.
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{_number}"] = _replica
DATABASE_ROUTERS = ["portal.db_routing.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = os.environ.get("PORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
# WhiteNoise serves STATIC_ROOT (filled by collectstatic, with gzip and brotli copies) from the web server.
# The names are not hashed (no manifest): a template or a stylesheet naming a file by hand cannot break a
# page, and tests need no collectstatic. Unhashed names cannot be cached long (a deploy would leave old
# scripts in browsers), so static files keep the no-store of every response (portal/middleware.py) and
# WhiteNoise adds no Cache-Control of its own; the price is the small stylesheet, script and icon per page.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_MAX_AGE = None
# Probe photos, crops and gallery images: never served from a public URL, only through
# permission-checked views.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Media in an S3-compatible object store instead, shared by every web and worker host (docs/object-storage.md):
# private objects, never a URL (presigned or not); the web process streams them after its permission check.
MEDIA_S3_ENDPOINT = os.environ.get("MEDIA_S3_ENDPOINT", "")
if MEDIA_S3_ENDPOINT:
    _media_s3 = {
        "MEDIA_S3_BUCKET": os.environ.get("MEDIA_S3_BUCKET", ""),
        "MEDIA_S3_ACCESS_KEY_ID": env_secret("MEDIA_S3_ACCESS_KEY_ID"),
        "MEDIA_S3_SECRET_ACCESS_KEY": env_secret("MEDIA_S3_SECRET_ACCESS_KEY"),
    }
    if missing := [name for name, value in _media_s3.items() if not value]:
        raise ImproperlyConfigured(f"MEDIA_S3_ENDPOINT is set, so {' and '.join(missing)} must be set too")
    if urlparse(MEDIA_S3_ENDPOINT).scheme not in ("http", "https") or not urlparse(MEDIA_S3_ENDPOINT).hostname:
        raise ImproperlyConfigured(f"MEDIA_S3_ENDPOINT must be an http:// or https:// URL, not {MEDIA_S3_ENDPOINT!r}")
    STORAGES["default"] = {
        "BACKEND": "portal.object_storage.backend.PrivateS3Storage",
        "OPTIONS": {
            "endpoint_url": MEDIA_S3_ENDPOINT,
            "bucket_name": _media_s3["MEDIA_S3_BUCKET"],
            "access_key": _media_s3["MEDIA_S3_ACCESS_KEY_ID"],
            "secret_key": _media_s3["MEDIA_S3_SECRET_ACCESS_KEY"],
            "region_name": os.environ.get("MEDIA_S3_REGION") or "us-east-1",
            # Empty: no ACL sent, for a bucket whose ACLs are disabled (its objects are private all the same).
            "default_acl": os.environ.get("MEDIA_S3_OBJECT_ACL", "private") or None,
            # An unreachable store fails an upload within seconds, with a clear message, instead of hanging.
            "connect_timeout": env_float("MEDIA_S3_CONNECT_TIMEOUT_SECONDS", 3.0),
            "read_timeout": env_float("MEDIA_S3_READ_TIMEOUT_SECONDS", 30.0),
            "max_attempts": env_int("MEDIA_S3_MAX_ATTEMPTS", 3),
        },
    }
# The id this deployment writes into its bucket's marker object: a bucket marked by another deployment is refused
# at start. Every host of a deployment with object storage sets the same id; without object storage, one kept
# under var/ (like the secret key) will do.
PORTAL_DEPLOYMENT_ID = os.environ.get("PORTAL_DEPLOYMENT_ID", "")
if not PORTAL_DEPLOYMENT_ID:
    if MEDIA_S3_ENDPOINT:
        raise ImproperlyConfigured(
            "PORTAL_DEPLOYMENT_ID must be set with MEDIA_S3_ENDPOINT: the same id on every host of the deployment"
        )
    _deployment_file = VAR_DIR / "deployment_id"
    if not _deployment_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        _deployment_file.write_text(f"embedded-{secrets.token_hex(8)}")
    PORTAL_DEPLOYMENT_ID = _deployment_file.read_text().strip()
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", PORTAL_DEPLOYMENT_ID):
    raise ImproperlyConfigured(
        f"PORTAL_DEPLOYMENT_ID must be 1-100 letters, digits, '.', '_' or '-', not {PORTAL_DEPLOYMENT_ID!r}"
    )

# --- Sign-in and sessions -------------------------------------------------------------------
# Every user has a second factor (TOTP, plus single-use backup codes). Pre-enrolment gives users
# made by create_user and the demo seed a device at once, so scripts and the demo can sign in; it is
# refused in production, where each user enrols their own device at first sign-in.
OTP_PREENROL = env_bool("OTP_PREENROL", not PRODUCTION)
if PRODUCTION and OTP_PREENROL:
    raise ImproperlyConfigured("OTP_PREENROL must be off in production: users enrol their own second factor")
OTP_TOTP_ISSUER = "Investigative face search"
# The lockout below bounds guessing; django-otp's own per-device back-off would also refuse the right
# code typed within a second or two of a wrong one, with no way to say so.
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_STATIC_THROTTLE_FACTOR = 0
SIGN_IN_FAILURE_LIMIT = env_int("SIGN_IN_FAILURE_LIMIT", 5)
SIGN_IN_FAILURE_WINDOW_MINUTES = env_int("SIGN_IN_FAILURE_WINDOW_MINUTES", 15)
SIGN_IN_LOCK_MINUTES = env_int("SIGN_IN_LOCK_MINUTES", 30)
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30)
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12)
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off in production")
    # TLS ends at the proxy in front (nginx, a load balancer), which sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Probes and the scrape come from inside (a load balancer, Prometheus), often straight to gunicorn.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", PRODUCTION)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "face-search@localhost")
INVITATION_VALID_HOURS = env_int("INVITATION_VALID_HOURS", 72)
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600)
# Probe uploads per user per minute: a burst beyond it is refused with a clear message.
UPLOADS_PER_MINUTE = env_int("UPLOADS_PER_MINUTE", 30)
# Sign-in attempts and public-page requests (invitation links, password reset) per address per minute.
SIGN_INS_PER_MINUTE = env_int("SIGN_INS_PER_MINUTE", 20)
PUBLIC_REQUESTS_PER_MINUTE = env_int("PUBLIC_REQUESTS_PER_MINUTE", 10)
# The public data-subject request page, all addresses together: each attempt may cost a face detection.
PUBLIC_REQUESTS_PER_MINUTE_TOTAL = env_int("PUBLIC_REQUESTS_PER_MINUTE_TOTAL", 60)
# The reverse proxies in front of the portal (addresses or CIDRs, comma-separated). Only through them is
# X-Forwarded-For believed; with none, REMOTE_ADDR is the client (portal/client_address.py).
TRUSTED_PROXIES = [p.strip() for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()]

# /metrics answers these addresses or CIDRs (empty: none), or a request with "Authorization: Bearer METRICS_TOKEN".
METRICS_ALLOWED = [a.strip() for a in os.environ.get("METRICS_ALLOWED", "127.0.0.1,::1").split(",") if a.strip()]
for _allowed in METRICS_ALLOWED:
    try:
        ipaddress.ip_network(_allowed, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED: {_allowed!r} is not an address or a CIDR network") from None
METRICS_TOKEN = env_secret("METRICS_TOKEN") or ""
if METRICS_TOKEN and len(METRICS_TOKEN) < 24:
    raise ImproperlyConfigured("METRICS_TOKEN must have at least 24 characters")

# JSON lines by default (portal/log_format.py), for web, worker and beat alike: Celery leaves the root
# logger to Django (CELERY_WORKER_HIJACK_ROOT_LOGGER below).
PORTAL_LOG_FORMAT = os.environ.get("PORTAL_LOG_FORMAT", "json")
if PORTAL_LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"PORTAL_LOG_FORMAT must be json or text, not {PORTAL_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "portal.log_format.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": PORTAL_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("PORTAL_LOG_LEVEL", "WARNING")},
    # With DEBUG on, Django logs every SQL statement with its parameters (justifications among them) at
    # DEBUG: never, whatever PORTAL_LOG_LEVEL says.
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Where the demo seed keeps the generated demo passwords (mode 600).
DEMO_LOGINS_FILE = Path(os.environ.get("DEMO_LOGINS_FILE", VAR_DIR / "demo-logins.json"))

# --- Faces ----------------------------------------------------------------------------------
# Real labelled photos for tests, benchmarks and the demo gallery; never copied into the repository.
FACES_DIR = Path(os.environ.get("FACES_DIR", BASE_DIR.parent / "shared" / "faces")).resolve()
FACE_ENGINE = os.environ.get("FACE_ENGINE", "yunet-sface-int8")
# Each engine's mate-based bound: no decision counts two faces further apart than this as a likely match.
# The threshold searches use is calibrated under it to the gallery's size (OPEN_SET_EXPECTED_FALSE below).
FACE_MATCH_THRESHOLD = env_float("FACE_MATCH_THRESHOLD", 0.6)  # dlib: Euclidean distance
FACE_DETECT_UPSAMPLE = env_int("FACE_DETECT_UPSAMPLE", 1)
# YuNet + SFace: cosine distance (1 − similarity) at SFace's published threshold; how the labelled shared
# pairs fall around it is in docs/benchmarks.md.
SFACE_MATCH_THRESHOLD = env_float("SFACE_MATCH_THRESHOLD", 0.637)
# The open-set decision (search/open_set.py, docs/open-set.md): the "likely candidate" threshold is the
# distance under which the expected number of unrelated gallery faces per search, N × FMR(t), stays at or
# below this, FMR estimated from real impostor distances (labelled pairs and the agency's own galleries).
OPEN_SET_EXPECTED_FALSE = env_float("OPEN_SET_EXPECTED_FALSE", 0.01)
# At most this many pairs of different gallery profiles are sampled per calibration.
CALIBRATION_MAX_PAIRS = env_int("CALIBRATION_MAX_PAIRS", 10_000_000)
# How often the beat recalibrates the agencies whose searchable galleries changed.
CALIBRATION_SECONDS = env_int("CALIBRATION_SECONDS", 600)
# The watch-list (search/watchlist.py, docs/watchlist.md): an entry's life when none is asked for, in days;
# the false alerts expected per entry over its whole life; the fewest enrolments its threshold is set for.
WATCHLIST_DEFAULT_DAYS = env_int("WATCHLIST_DEFAULT_DAYS", 90)
WATCHLIST_EXPECTED_FALSE_ALERTS = env_float("WATCHLIST_EXPECTED_FALSE_ALERTS", 0.01)
WATCHLIST_MIN_EXPECTED_ENROLMENTS = env_int("WATCHLIST_MIN_EXPECTED_ENROLMENTS", 1000)
# The quality floors of a face to compare (docs/quality-gate.md): below them a face's candidates may be
# listed for an examiner, never as a likely candidate. Eye distance: in the pixels the descriptor is made
# from (the photo scaled to FACE_DETECT_MAX_SIDE); sharpness: variance of the Laplacian of the interior
# of the engine's aligned face at 150 px.
QUALITY_MIN_EYE_DISTANCE_PX = env_float("QUALITY_MIN_EYE_DISTANCE_PX", 10.0)
SFACE_QUALITY_MIN_SHARPNESS = env_float("SFACE_QUALITY_MIN_SHARPNESS", 4.0)
DLIB_QUALITY_MIN_SHARPNESS = env_float("DLIB_QUALITY_MIN_SHARPNESS", 10.0)
YUNET_SCORE_THRESHOLD = env_float("YUNET_SCORE_THRESHOLD", 0.6)
# Photos are scaled to this longest side before detection: the side the benchmarks were measured at.
FACE_DETECT_MAX_SIDE = env_int("FACE_DETECT_MAX_SIDE", 1024)
FACE_CROP_SIZE = env_int("FACE_CROP_SIZE", 200)
SEARCH_TOP_K = env_int("SEARCH_TOP_K", 10)
# Enrolment quality gate, chosen from the shared labelled photos (docs/quality-gate.md).
ENROL_MIN_FACE_PX = env_int("ENROL_MIN_FACE_PX", 40)
ENROL_AMBIGUOUS_RATIO = env_float("ENROL_AMBIGUOUS_RATIO", 0.7)
ENROL_MIN_SHARPNESS = env_float("ENROL_MIN_SHARPNESS", 25.0)
# Processes that analyse gallery photos in a batch enrolment (enroll_gallery --workers).
ENROL_WORKERS = env_int("ENROL_WORKERS", os.cpu_count() or 1)
# The smallest breadth whose top-1 agrees with exact search for ≥ 99.9 % of the probes at a million faces on the
# partitioned descriptors (600: 100 %; 400: 99.80 %), docs/benchmarks.md.
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 600)
HNSW_ITERATIVE_SCAN = os.environ.get("HNSW_ITERATIVE_SCAN", "relaxed_order")
# An agency whose galleries hold at most this many faces (planner estimate) is searched exactly, without HNSW.
EXACT_SEARCH_MAX_FACES = env_int("EXACT_SEARCH_MAX_FACES", 20_000)

# Upload limits for probes and gallery photos.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 40_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Debian's chromium, driven by Playwright in the browser tests (Playwright's own download does not work offline).
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# --- Search jobs ----------------------------------------------------------------------------
# A running job whose heartbeat is older than this is taken to have lost its worker.
SEARCH_HEARTBEAT_SECONDS = env_int("SEARCH_HEARTBEAT_SECONDS", 5)
SEARCH_STALE_SECONDS = env_int("SEARCH_STALE_SECONDS", 30)
SEARCH_SWEEP_SECONDS = env_int("SEARCH_SWEEP_SECONDS", 15)
# A queued job whose message reached the broker this long ago is published again (a broker killed outright
# loses up to a second of messages it acknowledged); above the longest queue waits measured (docs/reliability.md).
SEARCH_REPUBLISH_SECONDS = env_int("SEARCH_REPUBLISH_SECONDS", 300)
if SEARCH_REPUBLISH_SECONDS < 1:
    raise ImproperlyConfigured("SEARCH_REPUBLISH_SECONDS must be at least 1")
SEARCH_MAX_ATTEMPTS = env_int("SEARCH_MAX_ATTEMPTS", 3)
SEARCH_TIME_LIMIT_SECONDS = env_int("SEARCH_TIME_LIMIT_SECONDS", 120)
# Every search states its purpose: an offense category and a justification of at least this length.
SEARCH_JUSTIFICATION_MIN_CHARS = env_int("SEARCH_JUSTIFICATION_MIN_CHARS", 20)
# Only the test suite supplies these, for tests that are not about purpose; production refuses them.
SEARCH_DEFAULT_PURPOSE = os.environ.get("SEARCH_DEFAULT_PURPOSE", "")
SEARCH_DEFAULT_JUSTIFICATION = os.environ.get("SEARCH_DEFAULT_JUSTIFICATION", "")
if PRODUCTION and (SEARCH_DEFAULT_PURPOSE or SEARCH_DEFAULT_JUSTIFICATION):
    raise ImproperlyConfigured("SEARCH_DEFAULT_PURPOSE / SEARCH_DEFAULT_JUSTIFICATION are for tests only")
# Crash drills only: a pause inside the task, so a test can kill a worker mid-job.
SEARCH_DRILL_PAUSE_SECONDS = env_float("SEARCH_DRILL_PAUSE_SECONDS", 0.0)

# --- Stills from recorded video (search/video.py): decoded only in a worker, under the photo decoding cap ---
VIDEO_MAX_BYTES = env_int("VIDEO_MAX_BYTES", 200 * 1024 * 1024)
VIDEO_MAX_SECONDS = env_int("VIDEO_MAX_SECONDS", 300)
VIDEO_STILLS_PROPOSED = env_int("VIDEO_STILLS_PROPOSED", 8)
VIDEO_SAMPLES_PER_SECOND = env_float("VIDEO_SAMPLES_PER_SECOND", 2.0)
# Reading a 5-minute video takes 105–116 s on 2 cores (docs/video-stills.md): its task has a limit of its own,
# under the broker's visibility timeout so that a long read is never delivered twice.
VIDEO_TIME_LIMIT_SECONDS = env_int("VIDEO_TIME_LIMIT_SECONDS", 450)

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = embedded.broker_url()
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "search")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = SEARCH_TIME_LIMIT_SECONDS
CELERY_TASK_SOFT_TIME_LIMIT = max(SEARCH_TIME_LIMIT_SECONDS - 10, 1)
# Redis redelivers an unacknowledged task after this; it must stay above the hard time limit, or a
# long task would run twice. Ten priority lists per queue (0 is taken first): a search's priority is
# its agency's backlog, so one agency's burst queues behind the others' searches (search_job_enqueue).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600),
    "priority_steps": list(range(10)),
}
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= max(CELERY_TASK_TIME_LIMIT, VIDEO_TIME_LIMIT_SECONDS):
    raise ImproperlyConfigured(
        "CELERY_VISIBILITY_TIMEOUT must exceed SEARCH_TIME_LIMIT_SECONDS and VIDEO_TIME_LIMIT_SECONDS"
    )
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Probe photos and their crops are deleted this many days after their case is closed.
PROBE_RETENTION_DAYS = env_int("PROBE_RETENTION_DAYS", 90)
# Where backups go by default, and the erasure register beside them (a restore erases again from it).
BACKUP_DIR = Path(os.environ.get("BACKUP_DIR", VAR_DIR / "backups"))
# pg_dump, pg_restore and psql for backups; empty: those of the embedded server, else PATH.
PG_BIN_DIR = os.environ.get("PG_BIN_DIR", "")

CELERY_BEAT_SCHEDULE = {
    "sweep-stale-search-jobs": {
        "task": "search.tasks.search_jobs_sweep",
        "schedule": float(SEARCH_SWEEP_SECONDS),
    },
    "purge-expired-data": {
        "task": "search.tasks.purge_expired",
        "schedule": 24 * 3600.0,
    },
    "recalibrate-thresholds": {
        "task": "search.tasks.calibrations_refresh",
        "schedule": float(CALIBRATION_SECONDS),
    },
    "expire-watchlist-entries": {
        "task": "search.tasks.watchlist_expire",
        "schedule": 24 * 3600.0,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- REST API (/api/v1/, docs/api.md) --------------------------------------------------------
# Per-user tokens (accounts/tokens.py): 90 days unless asked otherwise, never more than 365.
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365)
if not 1 <= API_TOKEN_DEFAULT_DAYS <= API_TOKEN_MAX_DAYS <= 365:
    raise ImproperlyConfigured("API_TOKEN_DEFAULT_DAYS must lie between 1 and API_TOKEN_MAX_DAYS (at most 365)")
# Requests per token per minute; beyond it a 429 with Retry-After.
API_RATE_PER_MINUTE = env_int("API_RATE_PER_MINUTE", 120)
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 50)
# The rate limit's counters live in the broker's Valkey (another database number), so that every web process
# counts the same requests: CACHE_URL, else the broker's server; tests use their own number (PORTAL_CACHE_DB).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": embedded.cache_url(env_int("PORTAL_CACHE_DB", 15)),
        "KEY_PREFIX": os.environ.get("DATABASE_TEST_NAME", "") or "portal",
    }
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api_auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api_auth.AgencyTokenUser"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.api_auth.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "portal.api.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Investigative face search API",
    "DESCRIPTION": "Cases, searches, candidates and leads, galleries and case reports, under the same rules as "
    "the pages. Authenticate with `Authorization: Bearer <token>` (docs/api.md). Errors are "
    "`application/problem+json` (RFC 9457).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "fsp_…"}}
    },
    "SECURITY": [{"bearerAuth": []}],
}
