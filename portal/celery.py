"""The Celery app. Workers and beat start the embedded servers when no URL names others."""

import os

from celery import Celery

from portal import embedded

embedded.ensure_services()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
