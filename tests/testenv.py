"""Loaded with -p before Django starts: the test run's own queue, media folder and short timeouts.

Tests use a queue of their own so that a worker of a running portal never takes a test's task,
and a media folder of their own so that nothing they write lands in the portal's.
"""

import os
import tempfile

os.environ.setdefault("CELERY_QUEUE", "search-test")
os.environ.setdefault("PORTAL_BROKER_DB", "1")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="portal-test-media-"))
# An empty STATIC_ROOT of their own: WhiteNoise serves no stale var/static, and a test fills it with collectstatic.
os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="portal-test-static-"))
# The erasure register lives beside the backups: tests keep theirs apart from the deployment's.
os.environ.setdefault("BACKUP_DIR", tempfile.mkdtemp(prefix="portal-test-backups-"))
os.environ.setdefault(
    "DEMO_LOGINS_FILE", os.path.join(tempfile.mkdtemp(prefix="portal-test-demo-"), "demo-logins.json")
)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
# Persistent connections would outlive the live server's request threads and block dropping the test database.
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
# Tests that are not about a search's stated purpose get one; the tests about purpose clear these.
os.environ.setdefault("SEARCH_DEFAULT_PURPOSE", "Robbery")
os.environ.setdefault("SEARCH_DEFAULT_JUSTIFICATION", "Test search: the suspect of a robbery on CCTV")

# The test run is an entry point like manage.py: it starts the embedded servers it needs, before Django
# reads its settings (importing the project starts nothing).
from portal import embedded  # noqa: E402

embedded.ensure_services()
