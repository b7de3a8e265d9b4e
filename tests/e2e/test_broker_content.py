"""What reaches the broker: task messages carry ids only, never image bytes or descriptors."""

import base64
import json
import os
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import Role
from accounts.services import agency_create, user_create
from portal.celery import app
from portal.services import case_create
from search.services import probe_submit
from tests.base import PASSWORD, photo_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def stored_values(client) -> bytes:
    """Every value the broker holds, whatever the key's type."""
    values = []
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"list":
            values += client.lrange(key, 0, -1)
        elif kind == b"hash":
            values += client.hvals(key)
        elif kind == b"set":
            values += list(client.smembers(key))
        elif kind == b"zset":
            values += client.zrange(key, 0, -1)
        elif kind == b"string":
            values.append(client.get(key))
    return b"".join(values)


def test_a_queued_search_message_holds_the_job_id_and_nothing_else(clean_test_broker):
    agency = agency_create(slug="north", name="North Police", seats=5)
    officer = user_create(username="alice", password=PASSWORD, role=Role.OFFICER, agency=agency)
    case = case_create(created_by=officer, number="N-1", title="t")
    job = probe_submit(case=case, uploaded_by=officer, data=photo_bytes("img1.jpg"))  # no worker: it stays queued

    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        raw = client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)
        everything = stored_values(client)
    assert len(raw) == 1
    message = json.loads(raw[0])
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([job.id], {})
    assert message["headers"]["task"] == "search.tasks.search_job_run"
    assert len(raw[0]) < 4000  # a few headers and an id: no room for a photo or a 128-float descriptor
    assert not any(magic in everything for magic in IMAGE_MAGIC)


def test_the_brokers_append_only_file_holds_no_image_bytes():
    from portal import embedded

    if os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL"):
        pytest.skip("an external broker: its files are not on this machine")
    files = [p for p in (Path(embedded.VALKEY_DIR) / "appendonlydir").glob("appendonly*") if p.is_file()]
    assert files, f"no append-only file under {embedded.VALKEY_DIR}"
    for path in files:
        content = path.read_bytes()
        assert not any(magic in content for magic in IMAGE_MAGIC), path
