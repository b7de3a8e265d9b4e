"""Drill: a broker killed outright loses a search's message; the sweeper publishes it again, and it runs once.

Real photos, the real dlib engine, the real test database, real worker and beat processes, and a Valkey
server of the drill's own (the shared one is never touched), killed with SIGKILL right after the upload.
"""

from __future__ import annotations

import signal
import time

import pytest

from accounts.models import Role
from accounts.services import agency_create, user_create
from portal.models import AuditEntry
from portal.services import case_create
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.jobs import search_job_enqueue
from search.models import Candidate, ProbeFace, SearchJob
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, PASSWORD, faces_dir, photo_bytes
from tests.e2e.drill import BeatProcess, drill_broker_running

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Test-only periods for the worker and beat processes (production defaults: 300 and 15 s).
DRILL_TIMEOUTS = {"SEARCH_REPUBLISH_SECONDS": 3, "SEARCH_SWEEP_SECONDS": 1}
GALLERY = {"P01": "img10.jpg", "P02": "img44.jpg"}
LOST, KEPT = ("img5.jpg", "P01"), ("img46.jpg", "P02")  # probe photo, the person it shows
FINAL_WITHIN_SECONDS = 45


@pytest.fixture
def volatile_broker(clean_test_broker):
    # The product's broker fsyncs its append-only file every second, so a SIGKILL loses at most the last
    # second of messages, and whether a given one is among them is a matter of timing. Without any
    # persistence a SIGKILL loses every message the broker held: the same state after the restart (the
    # job says it was published, the broker has no message), every time.
    with drill_broker_running("lost-drill-", persistent=False) as broker:
        yield broker


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(
        f"{what}: not within {timeout} s; jobs "
        f"{list(SearchJob.objects.values_list('pk', 'status', 'attempts', 'published_at'))}"
    )


def test_a_search_whose_message_the_killed_broker_lost_is_published_again_and_done_once(volatile_broker, start_worker):
    drill_started = time.monotonic()
    agency = agency_create(slug="north", name="North Police", seats=5)
    alice = user_create(username="alice", password=PASSWORD, role=Role.OFFICER, agency=agency)
    gallery, _ = gallery_get_or_create(
        owner=agency, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
    )
    items = [EnrolmentItem(path=str(faces_dir() / name), display_name=person) for person, name in GALLERY.items()]
    assert gallery_enrol_batch(gallery=gallery, gallery_created=True, items=items).faces_enrolled == len(GALLERY)
    case = case_create(created_by=alice, number="N-LOST", title="Lost message drill")

    lost = probe_submit(case=case, uploaded_by=alice, data=photo_bytes(LOST[0]))
    assert volatile_broker.waiting_job_ids() == [lost.id]  # the broker acknowledged its message ...
    volatile_broker.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    volatile_broker.start()
    assert volatile_broker.messages() == {"waiting": 0, "unacked": 0}  # ... and lost it
    lost.refresh_from_db()
    assert lost.status == SearchJob.Status.QUEUED and lost.published_at is not None  # the job says published

    # A search uploaded after the restart keeps its message, and gets the copy a republication would add
    # (the same call the sweeper makes): delivered twice, it must run once.
    kept = probe_submit(case=case, uploaded_by=alice, data=photo_bytes(KEPT[0]))
    assert search_job_enqueue(kept.id)
    assert volatile_broker.waiting_job_ids() == [kept.id, kept.id]
    lost_published = lost.published_at

    # Beat sends the sweeper every second; the worker runs it and the searches.
    beat = BeatProcess(volatile_broker, DRILL_TIMEOUTS)
    try:
        start_worker(CELERY_BROKER_URL=volatile_broker.url, **DRILL_TIMEOUTS)
        wait_until(
            lambda: SearchJob.objects.get(pk=lost.pk).published_at > lost_published,
            30,
            "the lost search published again",
        )
        republished_at = time.monotonic()
        wait_until(
            lambda: SearchJob.objects.filter(status=SearchJob.Status.DONE).count() == 2,
            FINAL_WITHIN_SECONDS,
            "both searches done",
        )
        done_at = time.monotonic()
        # Every copy is taken and does nothing more; a finished search is never published again.
        wait_until(lambda: volatile_broker.messages() == {"waiting": 0, "unacked": 0}, 30, "the broker drained")
        published_when_done = dict(SearchJob.objects.values_list("pk", "published_at"))
        time.sleep(DRILL_TIMEOUTS["SEARCH_REPUBLISH_SECONDS"] + 2 * DRILL_TIMEOUTS["SEARCH_SWEEP_SECONDS"])
        assert dict(SearchJob.objects.values_list("pk", "published_at")) == published_when_done
        assert volatile_broker.messages() == {"waiting": 0, "unacked": 0}
    finally:
        beat.stop()

    for job, (_, person) in ((lost, LOST), (kept, KEPT)):
        job.refresh_from_db()
        assert (job.status, job.attempts, job.error) == (SearchJob.Status.DONE, 1, ""), job.pk  # ran once
        faces = list(ProbeFace.objects.filter(probe=job.probe).values_list("pk", flat=True))
        assert len(faces) == 1, (job.pk, faces)
        rows = list(
            Candidate.objects.filter(job=job)
            .order_by("rank")
            .values_list("probe_face_id", "rank", "profile__display_name")
        )
        # One candidate set: one row per profile of the gallery, ranks 1..n, the person shown first.
        assert [(face, rank) for face, rank, _ in rows] == [(faces[0], rank) for rank in range(1, len(GALLERY) + 1)]
        assert len({name for *_, name in rows}) == len(GALLERY) and rows[0][2] == person, rows
        assert AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_RESULTS, target_id=str(job.pk)).count() == 1

    print(
        f"\nlost message drill: the killed broker lost job {lost.id}'s message; published again "
        f"{republished_at - killed_at:.1f} s after the kill; both jobs done once {done_at - killed_at:.1f} s "
        f"after it; "
        f"drill {time.monotonic() - drill_started:.1f} s"
    )
