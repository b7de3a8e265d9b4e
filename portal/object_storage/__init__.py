"""Media in an S3-compatible object store (docs/object-storage.md): the errors every layer may catch, the
deployment marker at the bucket's root, and the store's readiness check.

Importing this module contacts nothing and imports no S3 client: the backend (portal/object_storage/backend.py)
is loaded by Django's storage handler when MEDIA_S3_ENDPOINT is set, and the marker is checked from the process
entry points only (WSGI, the Celery worker's start-up, the system check manage.py commands run).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)

# The marker object at the bucket's root: which deployment's media the bucket holds.
MARKER_NAME = ".portal-deployment.json"


class MediaUnavailable(OSError):
    """The media storage cannot be reached (or refused the request): nothing was stored or read."""

    def __init__(self, reason: str):
        super().__init__(f"The media storage cannot be reached ({reason}).")
        self.reason = reason


class DeploymentMismatch(ImproperlyConfigured):
    """The bucket's marker names another deployment: its objects are not this deployment's media."""


def is_object_storage(storage=None) -> bool:
    """Whether the media live in the object store (else in the local MEDIA_ROOT)."""
    return bool(getattr(storage or default_storage, "is_object_storage", False))


def media_location(name: str, storage=None) -> str:
    """Where a stored file is, for an operator: its local path, or s3://bucket/name in the object store."""
    storage = storage or default_storage
    if is_object_storage(storage):
        return f"s3://{storage.bucket_name}/{name}"
    return storage.path(name)


def deployment_marker_check(storage=None) -> str | None:
    """Check (or, in a bucket without one, write) the marker; returns the deployment id it holds, None with local
    media. Raises DeploymentMismatch for another deployment's bucket, MediaUnavailable when the store is down."""
    storage = storage or default_storage
    if not is_object_storage(storage):
        return None
    return storage.deployment_marker_verify(settings.PORTAL_DEPLOYMENT_ID)


def deployment_marker_start_check() -> None:
    """At a process's start: DeploymentMismatch refuses the start. A store that cannot be reached is only logged:
    the process's first write checks the marker again, and /readyz reports the store down meanwhile."""
    try:
        deployment_marker_check()
    except MediaUnavailable as exc:
        logger.warning("The deployment marker of the media bucket could not be checked at start: %s", exc)


def deployment_marker_system_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The system check of manage.py commands: another deployment's bucket is an error, an unreachable store a
    warning."""
    if not is_object_storage():
        return []
    try:
        deployment_marker_check()
    except DeploymentMismatch as exc:
        return [checks.Error(str(exc), id="portal.E010")]
    except MediaUnavailable as exc:
        return [
            checks.Warning(
                f"{exc} The bucket's deployment marker could not be checked.",
                hint="Check MEDIA_S3_ENDPOINT and that the object store answers; /readyz reports it.",
                id="portal.W010",
            )
        ]
    return []


def object_storage_readiness() -> tuple[bool, str] | None:
    """For /readyz: whether the bucket answers (None with local media). The answer names no host."""
    if not is_object_storage():
        return None
    try:
        default_storage.bucket_check()
    except MediaUnavailable as exc:
        logger.warning("Readiness: the object store cannot be reached: %s", exc.__cause__ or exc)
        return False, f"the object store cannot be reached ({exc.reason})"
    return True, "the bucket answers"
