"""Media files (photos, crops, exports) in the media storage, the local MEDIA_ROOT or the object store
(docs/object-storage.md): every write and delete in search/ goes through here.

Reading stays a plain `default_storage.open` where a file is read. Either may raise MediaUnavailable when the
object store cannot be reached; the callers store media before the rows that name them and delete them again
when those rows cannot be written, so an outage leaves nothing half-stored.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from portal.object_storage import MediaUnavailable, media_location

__all__ = ["MediaUnavailable", "media_delete", "media_location", "media_store"]


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
