"""Media files under MEDIA_ROOT (photos, crops, exports): every write and delete in search/ goes through here.

Reading stays a plain `default_storage.open` where a file is read.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def media_store(name: str, data: bytes) -> str:
    """Write a file under MEDIA_ROOT at exactly that name (replacing a previous one)."""
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(data))


def media_delete(*names: str) -> None:
    """Delete these files; an empty name or a file already gone is skipped."""
    for name in names:
        if name and default_storage.exists(name):
            default_storage.delete(name)
