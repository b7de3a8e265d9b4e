"""The Celery app. Workers and beat start the embedded servers when no URL names others."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

from portal import embedded
from portal.ops.heartbeat import WorkerHeartbeat

embedded.ensure_services()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker writes a heartbeat into the broker while it runs; /readyz and /metrics count them.
app.steps["worker"].add(WorkerHeartbeat)


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
