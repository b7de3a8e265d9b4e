"""Shared fixtures: agencies North (alice: officer, bob: supervisor) and South (charlie)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from django.conf import settings
from PIL import Image

from accounts.models import Role
from tests.factories import GALLERY_PROVENANCE, PASSWORD, agency_make, case_make, user_make

__all__ = [
    "GALLERY_PROVENANCE",
    "PASSWORD",
    "AgencyFixtureMixin",
    "faces_dir",
    "identities",
    "photo_bytes",
    "image_bytes",
    "media_files",
    "sign_in",
    "shared_photo_path",
]


def faces_dir() -> Path:
    pairs = settings.FACES_DIR / "pairs"
    if not (pairs / "identities.csv").exists():
        raise AssertionError(
            f"The labelled face photos are missing: {pairs} does not exist. Set FACES_DIR to the folder "
            "that holds pairs/ (default ../shared/faces)."
        )
    return pairs


def identities() -> dict[str, str]:
    """file name → identity, from pairs/identities.csv."""
    with (faces_dir() / "identities.csv").open() as rows:
        return {row["file"]: row["identity"] for row in csv.DictReader(rows)}


def photo_bytes(name: str) -> bytes:
    return (faces_dir() / name).read_bytes()


def image_bytes(fmt: str = "PNG", size=(64, 48), color=(200, 180, 160), **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def media_files() -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def sign_in(client, user) -> None:
    """A session signed in with password and second factor (a confirmed TOTP device)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="test", confirmed=True
    )
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


class AgencyFixtureMixin:
    """Creates alice (officer), bob (supervisor) and erin (agency admin) of North, charlie (officer) and
    dave (agency admin) of South, and a case of North."""

    @classmethod
    def create_agencies(cls) -> None:
        cls.north = agency_make("north")
        cls.south = agency_make("south")
        cls.alice = user_make("alice", agency=cls.north)
        cls.bob = user_make("bob", agency=cls.north, role=Role.SUPERVISOR)
        cls.erin = user_make("erin", agency=cls.north, role=Role.AGENCY_ADMIN)
        cls.charlie = user_make("charlie", agency=cls.south)
        cls.dave = user_make("dave", agency=cls.south, role=Role.AGENCY_ADMIN)
        cls.case = case_make(created_by=cls.alice)


def shared_photo_path(name: str) -> str:
    return os.fspath(faces_dir() / name)
