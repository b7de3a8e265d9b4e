"""The Celery app: configuration only. Importing it starts nothing; a worker or beat process starts the
embedded servers (when no URL names others) from its own start-up signal, before it reaches the broker."""

import os

from celery import Celery
from celery.signals import beat_init, celeryd_init, worker_init, worker_process_init

from portal import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker writes a heartbeat into the broker while it runs; /readyz and /metrics count them. Named, not
# imported: the worker loads the step, and a service that only publishes never imports the ops modules.
app.steps["worker"].add("portal.ops.heartbeat:WorkerHeartbeat")


@celeryd_init.connect
@beat_init.connect
def start_embedded_servers(**_):
    """The worker's main process (celeryd_init) and beat (beat_init) start the embedded servers they need:
    both signals come before the first connection to the broker or the database."""
    embedded.ensure_services()


@worker_init.connect
def check_media_bucket(**_):
    """Refuse to start a worker whose media bucket holds another deployment's media (its marker object).
    SystemExit, not an exception: Celery logs an exception raised by a signal handler and goes on."""
    from portal.object_storage import DeploymentMismatch, deployment_marker_start_check

    try:
        deployment_marker_start_check()
    except DeploymentMismatch as exc:
        raise SystemExit(f"Refusing to start the worker: {exc}") from None


@worker_init.connect
def check_face_engine(**_):
    """Refuse to start a worker whose engine cannot load (a model file missing or altered): the error
    names the file. Loading here, before the pool forks, also shares the models with the children."""
    from django.conf import settings

    from search.faces import get_engine

    get_engine(settings.FACE_ENGINE)


@worker_process_init.connect
def load_face_models(**_):
    """Load the face models once per worker process, before its first task rather than during it."""
    from django.conf import settings

    from search.faces import get_engine

    get_engine(settings.FACE_ENGINE)
