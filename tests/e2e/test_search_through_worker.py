"""End to end: the search_photo contract and a worker crash drill, through real worker processes."""

import io
import json
import signal
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Role
from accounts.services import agency_create, user_create
from portal.services import case_create
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.jobs import search_jobs_sweep
from search.models import Candidate, ProbeFace, SearchJob
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, PASSWORD, faces_dir, photo_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GALLERY = {"P01": ["img1.jpg", "img2.jpg"], "P02": ["img16.jpg", "img17.jpg"], "P03": ["img22.jpg", "img23.jpg"]}


@pytest.fixture
def north():
    agency = agency_create(slug="north", name="North Police", seats=5)
    officer = user_create(username="alice", password=PASSWORD, role=Role.OFFICER, agency=agency)
    gallery, _ = gallery_get_or_create(
        owner=agency, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
    )
    items = [
        EnrolmentItem(path=str(faces_dir() / name), display_name=identity)
        for identity, names in GALLERY.items()
        for name in names
    ]
    assert gallery_enrol_batch(gallery=gallery, gallery_created=True, items=items).faces_enrolled == 6
    return agency, officer


def wait_for(job_id: int, predicate, timeout: float = 120) -> SearchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = SearchJob.objects.get(pk=job_id)
        if predicate(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck in {SearchJob.objects.get(pk=job_id).status}")


def test_search_photo_returns_the_identity_at_rank_one(start_worker, north):
    start_worker()
    out = io.StringIO()
    call_command(
        "search_photo",
        str(faces_dir() / "img5.jpg"),
        "--agency",
        "north",
        "--case",
        "N-1",
        "--user",
        "alice",
        "--json",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["status"] == "done" and result["error"] is None
    assert len(result["faces"]) == 1
    face = result["faces"][0]
    assert len(face["box"]) == 4 and face["box"][2] > 100
    assert [c["rank"] for c in face["candidates"]] == [1, 2, 3]
    first = face["candidates"][0]
    assert (first["profile"], first["match"]) == ("P01", True)
    assert first["distance"] < 0.6
    assert all(not c["match"] for c in face["candidates"][1:])
    job = SearchJob.objects.get(pk=result["job"])
    assert job.probe.case.number == "N-1"
    assert set(job.stage_ms) == {"decode", "detect", "embed", "calibrate", "search", "render"}


def test_search_photo_reports_a_photo_without_a_face(start_worker, north, tmp_path):
    start_worker()
    from tests.base import image_bytes

    blank = tmp_path / "blank.png"
    blank.write_bytes(image_bytes("PNG", size=(300, 200)))
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "search_photo", str(blank), "--agency", "north", "--case", "N-1", "--user", "alice", "--json", stdout=out
        )
    assert exit_info.value.code == 1
    result = json.loads(out.getvalue())
    assert (result["status"], result["error"], result["faces"]) == ("failed", "No face found in the photo.", [])


def test_a_job_whose_worker_is_killed_mid_search_is_done_once_after_a_new_worker_starts(start_worker, north):
    agency, officer = north
    drill = {"SEARCH_DRILL_PAUSE_SECONDS": 5, "SEARCH_HEARTBEAT_SECONDS": 1}
    doomed = start_worker(**drill)
    case = case_create(created_by=officer, number="N-2", title="Drill")
    job = probe_submit(case=case, uploaded_by=officer, data=photo_bytes("img5.jpg"))
    wait_for(job.id, lambda j: j.status == SearchJob.Status.RUNNING and j.heartbeat_at is not None)
    doomed.kill(signal.SIGKILL)
    killed = SearchJob.objects.get(pk=job.id)
    assert (killed.status, killed.attempts) == (SearchJob.Status.RUNNING, 1)

    start_worker()
    # The sweeper's clock is moved past the staleness bound instead of waiting for it.
    assert search_jobs_sweep(now=timezone.now() + timedelta(seconds=31)) == [job.id]
    done = wait_for(job.id, lambda j: j.is_finished)
    assert done.status == SearchJob.Status.DONE
    assert done.attempts == 2
    assert ProbeFace.objects.filter(probe=job.probe).count() == 1
    candidates = Candidate.objects.filter(job=job)
    assert candidates.count() == 3
    assert candidates.get(rank=1).profile.display_name == "P01"
    # A late redelivery of the killed worker's message changes nothing.
    time.sleep(1)
    assert Candidate.objects.filter(job=job).count() == 3
