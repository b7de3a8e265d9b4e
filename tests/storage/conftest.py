"""The object-storage tests run against a real SeaweedFS S3 server: one for the session, a fresh bucket per test
(tests that stop the store start one of their own). Every test here is transactional, as a worker process or a
command run as a subprocess must see its rows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from portal.object_storage import MARKER_NAME
from tests.e2e.conftest import clean_test_broker, offense_categories, start_worker  # noqa: F401 - fixtures
from tests.servers.seaweedfs import SeaweedS3

DEPLOYMENT_ID = "test-deployment"


@dataclass
class MediaBucket:
    """The bucket a test's media go to, and the MEDIA_ROOT that must stay empty."""

    server: SeaweedS3
    bucket: str
    media_root: Path

    def keys(self, prefix: str = "") -> list[str]:
        """The objects in the bucket (the deployment marker left out)."""
        return [key for key in self.server.keys(bucket=self.bucket, prefix=prefix) if key != MARKER_NAME]

    def read(self, key: str) -> bytes:
        return self.server.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def env(self, deployment_id: str = DEPLOYMENT_ID) -> dict[str, str]:
        """What a worker or a command needs to use this bucket, through settings built from the environment."""
        return self.server.media_env(deployment_id=deployment_id, bucket=self.bucket) | {
            "MEDIA_ROOT": str(self.media_root)
        }

    def local_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.media_root)) for p in self.media_root.rglob("*") if p.is_file())

    def storages(self) -> dict:
        """STORAGES as portal/settings.py builds them from these MEDIA_S3_* variables."""
        return settings.STORAGES | {
            "default": {
                "BACKEND": "portal.object_storage.backend.PrivateS3Storage",
                "OPTIONS": {
                    "endpoint_url": self.server.endpoint_url,
                    "bucket_name": self.bucket,
                    "access_key": self.server.access_key,
                    "secret_key": self.server.secret_key,
                    "region_name": "us-east-1",
                    "default_acl": "private",
                    "connect_timeout": 3.0,
                    "read_timeout": 30.0,
                    "max_attempts": 3,
                },
            }
        }


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


def _media_bucket(server: SeaweedS3, tmp_path: Path):
    bucket = server.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
    media_root = tmp_path / "media-root"
    media_root.mkdir()
    media = MediaBucket(server=server, bucket=bucket, media_root=media_root)
    with override_settings(STORAGES=media.storages(), MEDIA_ROOT=str(media_root), PORTAL_DEPLOYMENT_ID=DEPLOYMENT_ID):
        yield media


@pytest.fixture
def s3_media(seaweed, tmp_path, transactional_db):
    """This process's media in a fresh bucket of the session's store."""
    yield from _media_bucket(seaweed, tmp_path)


@pytest.fixture
def own_store(tmp_path):
    """A store of the test's own, which the test may kill (and start again on the same ports and data)."""
    server = SeaweedS3(tmp_path / "seaweedfs").start()
    yield server
    server.kill()


@pytest.fixture
def own_s3_media(own_store, tmp_path, transactional_db):
    yield from _media_bucket(own_store, tmp_path)


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`manage.py` in a process of its own, on the test database, with the settings its environment gives."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=os.environ | {"DATABASE_NAME": connection.settings_dict["NAME"]} | env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
