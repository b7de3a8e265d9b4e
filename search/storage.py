"""Media files (photos, crops, exports) in the media storage, the local MEDIA_ROOT or the object store
(docs/object-storage.md): every write and delete in search/ goes through here.

Reading stays a plain `default_storage.open` where a file is read. Either may raise MediaUnavailable when the
object store cannot be reached; the callers store media before the rows that name them and delete them again
when those rows cannot be written, so an outage leaves nothing half-stored.
"""

from __future__ import annotations

import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from portal.object_storage import MediaUnavailable, is_object_storage, media_location

__all__ = [
    "MediaUnavailable",
    "media_available_check",
    "media_delete",
    "media_delete_on_commit",
    "media_location",
    "media_store",
]

logger = logging.getLogger(__name__)


def media_store(name: str, data: bytes) -> str:
    """Write a file to the media storage at exactly that name (replacing a previous one)."""
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(data))


def media_delete(*names: str) -> None:
    """Delete these files; an empty name or a file already gone is skipped."""
    for name in names:
        if name and default_storage.exists(name):
            default_storage.delete(name)


def media_available_check() -> None:
    """Raise MediaUnavailable when the object store does not answer (a local folder needs no check): called before
    an erasure whose files go after its commit, so that an outage refuses it rather than leaving files behind."""
    if is_object_storage():
        default_storage.bucket_check()


def media_delete_on_commit(*names: str) -> None:
    """Delete these files once the current transaction commits (the rows that named them are then gone for good).
    Should the store fail at that moment, the names left behind are logged as an error, for an operator."""

    def delete() -> None:
        try:
            media_delete(*names)
        except MediaUnavailable as exc:
            logger.error("Media files left in the store after their records were deleted (%s): %s", exc, names)

    transaction.on_commit(delete)
