"""The media storage in an S3-compatible object store: django-storages' S3 backend, kept private.

- Objects are written with a private ACL and never handed out as a URL (neither plain nor presigned): media
  leave the portal only through its permission-checked views, which stream them (`url()` refuses).
- Names are exactly those of the local storage: a name already taken gets Django's suffix, as on disk, and
  nothing is silently overwritten.
- Short timeouts and few attempts: an unreachable store fails within seconds, and every error of the store
  becomes MediaUnavailable (an OSError) with a clear message; a missing object stays FileNotFoundError.
- The bucket's root holds the deployment marker (portal/object_storage/__init__.py); listings leave it out, and
  the first write of a process checks it when its start could not.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import weakref

from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.utils import timezone
from storages.backends.s3 import S3File, S3Storage
from storages.utils import clean_name

from portal.object_storage import MARKER_NAME, DeploymentMismatch, MediaUnavailable

logger = logging.getLogger(__name__)

STORE_ERRORS = (BotoCoreError, Boto3Error, ClientError)

# The storages of this process. A forked child (a Celery pool process, a preloaded gunicorn worker) must not
# share its parent's pooled HTTP connections to the store, which the parent opened checking the marker.
_storages: weakref.WeakSet = weakref.WeakSet()


def _forget_connections() -> None:
    for storage in list(_storages):
        storage._connections = threading.local()
        storage._unsigned_connections = threading.local()
        storage._bucket = None


os.register_at_fork(after_in_child=_forget_connections)


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code") or error.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode"
        )
        return f"{type(error).__name__} {code}"
    return type(error).__name__


def _unavailable(error: Exception) -> MediaUnavailable:
    logger.warning("Media storage error: %s", error)
    return MediaUnavailable(_reason(error))


def _translated(method):
    """Every error of the store (network, timeout, refusal) as MediaUnavailable."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except STORE_ERRORS as error:
            raise _unavailable(error) from error

    return wrapper


class PrivateS3File(S3File):
    """An object opened for reading: its download (on the first read) fails as MediaUnavailable too."""

    file = property(_translated(S3File._get_file), S3File._set_file)
    close = _translated(S3File.close)


class PrivateS3Storage(S3Storage):
    is_object_storage = True
    default_acl = "private"
    querystring_auth = False
    file_overwrite = False
    addressing_style = "path"
    signature_version = "s3v4"
    # A downloaded object larger than this spills from memory to a temporary file.
    max_memory_size = 4 * 1024 * 1024

    def __init__(self, **options):
        super().__init__(**options)
        self.client_config = Config(
            s3={"addressing_style": self.addressing_style},
            signature_version=self.signature_version,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
        )
        self._marker_checked = threading.Event()
        _storages.add(self)

    def get_default_settings(self):
        return super().get_default_settings() | {"connect_timeout": 3.0, "read_timeout": 30.0, "max_attempts": 3}

    def url(self, name, parameters=None, expire=None, http_method=None):
        raise NotImplementedError(
            "Media in the object store have no URL: the portal's permission-checked views stream them."
        )

    @_translated
    def _open(self, name, mode="rb"):
        if "w" in mode and not self._marker_checked.is_set():
            self.deployment_marker_verify(self._deployment_id())
        name = self._normalize_name(clean_name(name))
        try:
            return PrivateS3File(name, mode, self)
        except ClientError as error:
            if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                raise FileNotFoundError(f"File does not exist: {name}") from None
            raise

    @_translated
    def _save(self, name, content):
        if not self._marker_checked.is_set():
            self.deployment_marker_verify(self._deployment_id())
        return super()._save(name, content)

    delete = _translated(S3Storage.delete)
    exists = _translated(S3Storage.exists)
    size = _translated(S3Storage.size)
    get_modified_time = _translated(S3Storage.get_modified_time)

    @_translated
    def listdir(self, name):
        directories, files = super().listdir(name)
        if not self._normalize_name(clean_name(name)).strip("/"):
            files = [file for file in files if file != MARKER_NAME]
        return directories, files

    @_translated
    def bucket_check(self) -> None:
        """The bucket answers this deployment's credentials (readiness)."""
        self.connection.meta.client.head_bucket(Bucket=self.bucket_name)

    @staticmethod
    def _deployment_id() -> str:
        from django.conf import settings

        return settings.PORTAL_DEPLOYMENT_ID

    @_translated
    def deployment_marker_verify(self, deployment_id: str) -> str:
        """The marker's deployment id, written first when the bucket has none; DeploymentMismatch when it names
        another deployment (or cannot be read as a marker)."""
        client = self.connection.meta.client
        try:
            body = client.get_object(Bucket=self.bucket_name, Key=MARKER_NAME)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            body = None
        if body is None:
            marker = {"deployment_id": deployment_id, "written_at": timezone.now().isoformat()}
            client.put_object(
                Bucket=self.bucket_name,
                Key=MARKER_NAME,
                Body=json.dumps(marker).encode(),
                ContentType="application/json",
                **({"ACL": self.default_acl} if self.default_acl else {}),
            )
            logger.warning("Media bucket %s marked as deployment %s", self.bucket_name, deployment_id)
            body = client.get_object(Bucket=self.bucket_name, Key=MARKER_NAME)["Body"].read()
        try:
            found = json.loads(body)["deployment_id"]
        except (ValueError, KeyError, TypeError):
            raise DeploymentMismatch(
                f"The media bucket {self.bucket_name!r} holds a {MARKER_NAME} that is not a deployment marker: "
                "refusing to use it. Point MEDIA_S3_BUCKET at this deployment's own bucket."
            ) from None
        if found != deployment_id:
            raise DeploymentMismatch(
                f"The media bucket {self.bucket_name!r} belongs to deployment {found!r} (its {MARKER_NAME}), not "
                f"to this deployment {deployment_id!r} (PORTAL_DEPLOYMENT_ID): refusing to start. Point "
                "MEDIA_S3_BUCKET at this deployment's own bucket, or set the PORTAL_DEPLOYMENT_ID the bucket was "
                "made for."
            )
        self._marker_checked.set()
        return found
