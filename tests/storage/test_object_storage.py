"""Media in a real S3-compatible object store (SeaweedFS): settings from MEDIA_S3_*, probes, crops and gallery
photos written to the bucket and nothing to MEDIA_ROOT, a search through a real worker that reads the probe from
the bucket, private objects streamed only by the permission-checked views, erasure and retention deleting the
objects, the deployment marker, and the store going away (uploads refused whole, searches failing with the
reason after their attempts, /readyz down)."""

from __future__ import annotations

import io
import json
import os
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.services import user_create
from portal import backups
from portal.models import AuditEntry
from portal.object_storage import MARKER_NAME, DeploymentMismatch, MediaUnavailable, deployment_marker_check
from portal.services import case_close
from search import pipeline, retention
from search.models import FaceImage, Gallery, Probe, ProbeFace, Profile, SearchJob, SubjectRequest
from search.services import probe_submit
from tests.base import PASSWORD, faces_dir, photo_bytes, sign_in
from tests.factories import agency_make, case_make, gallery_make, user_make
from tests.storage.conftest import DEPLOYMENT_ID, manage

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = {"P01": ["img1.jpg", "img2.jpg"], "P02": ["img16.jpg"]}
JUSTIFICATION = "Suspect seen on the station camera at the robbery."


@pytest.fixture
def north():
    """North (alice, an officer, with a case and an enrolled gallery) and South (charlie)."""
    agency = agency_make("north")
    alice = user_make("alice", agency=agency)
    south = agency_make("south")
    charlie = user_make("charlie", agency=south)
    gallery = gallery_make(
        owner=agency, people={who: [faces_dir() / name for name in names] for who, names in PEOPLE.items()}
    )
    return {
        "agency": agency,
        "alice": alice,
        "charlie": charlie,
        "case": case_make(created_by=alice),
        "gallery": gallery,
    }


def wait_for(job_id: int, predicate, timeout: float = 120) -> SearchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = SearchJob.objects.get(pk=job_id)
        if predicate(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck in {SearchJob.objects.get(pk=job_id).status}")


# --- Settings -------------------------------------------------------------------------------------------------


SHELL_ROUND_TRIP = """
import json
from django.conf import settings
from django.core.files.storage import default_storage
from search.storage import media_location, media_store
name = media_store("probes/north/from-env.jpg", b"stored through the settings")
print(json.dumps({
    "backend": type(default_storage._wrapped).__name__,
    "name": name,
    "read": default_storage.open(name).read().decode(),
    "location": media_location(name),
    "deployment": settings.PORTAL_DEPLOYMENT_ID,
}))
"""


def test_settings_from_the_environment_keep_media_in_the_bucket(s3_media):
    ran = manage("shell", "-c", SHELL_ROUND_TRIP, env=s3_media.env())
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result == {
        "backend": "PrivateS3Storage",
        "name": "probes/north/from-env.jpg",
        "read": "stored through the settings",
        "location": f"s3://{s3_media.bucket}/probes/north/from-env.jpg",
        "deployment": DEPLOYMENT_ID,
    }
    assert s3_media.keys() == ["probes/north/from-env.jpg"]
    assert json.loads(s3_media.read(MARKER_NAME))["deployment_id"] == DEPLOYMENT_ID  # written on first use
    assert s3_media.local_files() == []


@pytest.mark.parametrize(
    ("left_out", "named"),
    [
        ("MEDIA_S3_BUCKET", "MEDIA_S3_BUCKET"),
        ("MEDIA_S3_SECRET_ACCESS_KEY", "MEDIA_S3_SECRET_ACCESS_KEY"),
        ("PORTAL_DEPLOYMENT_ID", "PORTAL_DEPLOYMENT_ID must be set with MEDIA_S3_ENDPOINT"),
    ],
)
def test_a_missing_setting_is_named(s3_media, left_out, named):
    env = s3_media.env() | {left_out: ""}
    ran = manage("check", env=env)
    assert ran.returncode == 1
    assert "ImproperlyConfigured" in ran.stderr and named in ran.stderr


# --- What goes into the bucket ----------------------------------------------------------------------------------


def test_gallery_enrolment_writes_each_photo_and_crop_to_the_bucket(s3_media, north):
    faces = FaceImage.objects.filter(gallery=north["gallery"]).order_by("id")
    assert faces.count() == 3
    expected = sorted(name for face in faces for name in (face.image.name, face.crop.name))
    assert all(name.startswith((f"gallery/{north['gallery'].code}/", "crops/gallery/")) for name in expected)
    assert s3_media.keys() == expected
    first = faces.first()
    assert s3_media.read(first.image.name)[:2] == b"\xff\xd8"  # a JPEG
    assert s3_media.local_files() == []


@pytest.mark.e2e
def test_a_search_through_a_real_worker_reads_the_probe_from_the_bucket_and_writes_its_crops_there(
    s3_media, north, start_worker
):
    worker = start_worker(**s3_media.env())
    job = probe_submit(
        case=north["case"], uploaded_by=north["alice"], data=photo_bytes("img5.jpg"), original_name="cctv.jpg"
    )
    done = wait_for(job.id, lambda j: j.is_finished)
    assert done.status == SearchJob.Status.DONE, done.error
    assert done.candidates.get(rank=1).profile.display_name == "P01"
    crop = ProbeFace.objects.get(probe=done.probe).crop.name
    assert crop == f"crops/probes/{done.code}/face-1.jpg"
    keys = s3_media.keys()
    assert done.probe.image.name in keys and done.probe.image.name.startswith(f"probes/{north['agency'].code}/")
    assert crop in keys  # written by the worker process
    assert s3_media.read(crop)[:2] == b"\xff\xd8"
    assert s3_media.local_files() == []  # neither this process nor the worker wrote to MEDIA_ROOT
    assert worker.process.poll() is None


# --- Private objects, streamed by the views -------------------------------------------------------------------


def test_a_media_view_streams_the_object_to_its_agency_only(s3_media, north, client):
    job = probe_submit(case=north["case"], uploaded_by=north["alice"], data=photo_bytes("img5.jpg"))
    pipeline.search_job_run(job_id=job.id)
    face = FaceImage.objects.filter(gallery=north["gallery"]).first()
    crop = ProbeFace.objects.get(probe=job.probe).crop.name
    urls = {
        reverse("search:face-photo", args=[face.code]): face.image.name,
        reverse("search:probe-image", args=[job.probe.code]): job.probe.image.name,
        reverse("search:probe-face-crop", args=[job.code, 1]): crop,
    }
    sign_in(client, north["alice"])
    for url, key in urls.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] == "image/jpeg"
        assert "no-store" in response["Cache-Control"]
        assert b"".join(response.streaming_content) == s3_media.read(key)
    sign_in(client, north["charlie"])
    for url in urls:
        assert client.get(url).status_code == 404  # another agency's: not even its existence is told


def test_the_store_hands_out_no_url_and_refuses_anonymous_reads(s3_media, north):
    face = FaceImage.objects.filter(gallery=north["gallery"]).first()
    with pytest.raises(NotImplementedError, match="permission-checked views"):
        default_storage.url(face.image.name)
    for key in (face.image.name, MARKER_NAME):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{s3_media.server.endpoint_url}/{s3_media.bucket}/{key}", timeout=10)
        assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as listing:
        urllib.request.urlopen(f"{s3_media.server.endpoint_url}/{s3_media.bucket}/", timeout=10)
    assert listing.value.code == 403


# --- Deleting: retention and erasure --------------------------------------------------------------------------


def test_retention_deletes_the_probe_and_crop_objects_and_the_expired_gallery_faces(s3_media, north):
    job = probe_submit(case=north["case"], uploaded_by=north["alice"], data=photo_bytes("img5.jpg"))
    pipeline.search_job_run(job_id=job.id)
    probe_objects = [job.probe.image.name, ProbeFace.objects.get(probe=job.probe).crop.name]
    gallery_objects = s3_media.keys("gallery/") + s3_media.keys("crops/gallery/")
    assert set(probe_objects) <= set(s3_media.keys()) and len(gallery_objects) == 6
    case_close(case=north["case"], actor=north["alice"])
    Gallery.objects.filter(pk=north["gallery"].pk).update(retention_days=30)

    retention.purge_expired(now=timezone.now() + timedelta(days=91))

    assert s3_media.keys() == []
    assert not FaceImage.objects.filter(gallery=north["gallery"]).exists()
    assert Probe.objects.get(pk=job.probe.pk).image.name == ""


def test_an_erasure_deletes_the_persons_objects_and_an_access_export_is_in_the_bucket(s3_media, north):
    user_create(username="priya", password=PASSWORD, role=Role.PRIVACY_OFFICER)
    pat = Profile.objects.get(gallery=north["gallery"], display_name="P01")
    pat_objects = [n for f in pat.face_images.all() for n in (f.image.name, f.crop.name)]
    others = sorted(set(s3_media.keys()) - set(pat_objects))

    def work(kind: str) -> dict:
        out = io.StringIO()
        call_command(
            "subject_request", kind, str(faces_dir() / "img5.jpg"), "--contact", "p@example.org", "--json", stdout=out
        )
        reference = json.loads(out.getvalue())["reference"]
        out = io.StringIO()
        call_command("process_request", reference, "--user", "priya", "--approve-all", "--json", stdout=out)
        return json.loads(out.getvalue())

    access = work("access")
    export = f"subject-requests/{access['reference']}/export.zip"
    assert access["export"] == f"s3://{s3_media.bucket}/{export}"
    assert export in s3_media.keys()
    assert len(access["matches"]) == 1 and access["matches"][0]["profile"] == "P01"

    erasure = work("erasure")
    assert erasure["files_removed"] == len(pat_objects) == 4
    remaining = s3_media.keys()
    assert not set(pat_objects) & set(remaining)
    assert sorted(set(remaining) - {export}) == others  # the other person's objects stay
    assert SubjectRequest.objects.filter(photo="").count() == 2  # the requests' own photos went too
    assert s3_media.local_files() == []


def test_a_backup_of_the_bucket_restores_into_an_emptied_bucket(s3_media, north, tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "backups"
    job = probe_submit(case=north["case"], uploaded_by=north["alice"], data=photo_bytes("img5.jpg"))
    pipeline.search_job_run(job_id=job.id)
    assert MARKER_NAME in s3_media.server.keys(bucket=s3_media.bucket)
    objects = {key: s3_media.read(key) for key in s3_media.keys()}
    assert backups._media_names() == sorted(objects)  # the marker is the bucket's, not a media file
    out = io.StringIO()
    call_command("backup", str(tmp_path / "backup"), "--json", stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["media_files"] == len(objects)

    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in sorted(backups.product_tables()))} "
            "RESTART IDENTITY CASCADE"
        )
    for key in objects:
        default_storage.delete(key)
    assert s3_media.keys() == []
    call_command("restore", str(tmp_path / "backup"), "--json", stdout=io.StringIO(), stderr=io.StringIO())

    assert {key: s3_media.read(key) for key in s3_media.keys()} == objects
    assert SearchJob.objects.get(code=job.code).candidates.get(rank=1).profile.display_name == "P01"
    assert s3_media.local_files() == []


def test_a_forked_process_opens_connections_of_its_own(s3_media):
    assert deployment_marker_check() == DEPLOYMENT_ID
    parent = default_storage.connection
    child = os.fork()
    if child == 0:  # a pool process: a fresh connection that still reads the bucket
        try:
            os._exit(0 if default_storage.connection is not parent and default_storage.exists(MARKER_NAME) else 3)
        except BaseException:
            os._exit(4)
    assert os.waitpid(child, 0)[1] == 0
    assert default_storage.connection is parent


def test_a_video_is_decoded_from_a_local_copy_of_its_object(s3_media, tmp_path):
    from search.storage import media_store
    from search.video import _local_copy

    name = media_store("videos/north/abc/source.mp4", b"\x00\x00\x00\x18ftypmp42" + b"x" * 5000)
    copy = _local_copy(name, tmp_path)
    assert copy.parent == tmp_path and copy.read_bytes() == s3_media.read(name)


# --- The deployment marker ------------------------------------------------------------------------------------


def test_a_bucket_marked_by_another_deployment_is_refused_at_start(s3_media, start_worker):
    assert deployment_marker_check() == DEPLOYMENT_ID  # first use writes this deployment's marker
    assert manage("check", env=s3_media.env()).returncode == 0

    other = s3_media.env(deployment_id="another-deployment")
    checked = manage("check", env=other)
    assert checked.returncode == 1
    assert "belongs to deployment 'test-deployment'" in checked.stderr
    assert "not to this deployment 'another-deployment'" in checked.stderr

    wsgi = manage("shell", "-c", "import portal.wsgi", env=other)
    assert wsgi.returncode == 1 and "DeploymentMismatch" in wsgi.stderr

    with pytest.raises(RuntimeError) as worker:
        start_worker(**other)
    assert "Refusing to start the worker" in str(worker.value)
    assert "belongs to deployment 'test-deployment'" in str(worker.value)

    with pytest.raises(DeploymentMismatch):
        default_storage.deployment_marker_verify("another-deployment")
    assert json.loads(s3_media.read(MARKER_NAME))["deployment_id"] == DEPLOYMENT_ID  # left as it was
    assert s3_media.keys() == []


# --- The store goes away --------------------------------------------------------------------------------------


def test_an_upload_with_the_store_down_is_refused_and_leaves_no_rows_and_no_objects(own_s3_media, north, client):
    store = own_s3_media.server
    before = {
        "probes": Probe.objects.count(),
        "jobs": SearchJob.objects.count(),
        "faces": FaceImage.objects.count(),
        "galleries": Gallery.objects.count(),
        "audit": AuditEntry.objects.count(),
    }
    objects = own_s3_media.keys()
    store.kill()
    started = time.monotonic()

    sign_in(client, north["alice"])
    page = client.post(
        reverse("search:probe-upload", args=[north["case"].code]),
        {"photos": [_upload("img5.jpg")], "purpose": "Robbery", "justification": JUSTIFICATION},
    )
    assert page.status_code == 503
    assert "The media storage cannot be reached" in page.content.decode()

    from accounts import tokens

    token = tokens.api_token_create(user=north["alice"], name="script").token
    before["audit"] = AuditEntry.objects.count()  # the token's own entry
    api = client.post(
        f"/api/v1/cases/{north['case'].code}/searches/",
        {"photo": _upload("img5.jpg"), "purpose": "Robbery", "justification": JUSTIFICATION},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 503 and api["Content-Type"] == "application/problem+json"
    assert "media storage cannot be reached" in api.json()["detail"]

    erin = user_create(username="erin", password=PASSWORD, role=Role.AGENCY_ADMIN, agency=north["agency"])
    sign_in(client, erin)
    before["audit"] = AuditEntry.objects.count()
    gallery_enrol = client.post(
        reverse("search:gallery-enrol"),
        {
            "new_name": "Outage gallery",
            "legal_basis": "Police Act s.64",
            "source_type": "booking",
            "responsible_person": "Records officer",
            "retention_days": 3650,
            "display_name": "Someone",
            "photos": [_upload("img16.jpg")],
        },
        HTTP_ACCEPT="application/json",
    )
    assert gallery_enrol.status_code == 503, gallery_enrol.content
    assert "The media storage cannot be reached" in gallery_enrol.json()["errors"]["media"]

    command = manage(
        "search_photo",
        str(faces_dir() / "img5.jpg"),
        "--agency",
        "north",
        "--case",
        north["case"].number,
        "--user",
        "alice",
        "--json",
        env=own_s3_media.env(),
    )
    assert command.returncode == 1
    assert "The media storage cannot be reached" in command.stderr
    assert "Traceback" not in command.stderr
    assert time.monotonic() - started < 60  # each refusal within seconds, not a hang

    after = {
        "probes": Probe.objects.count(),
        "jobs": SearchJob.objects.count(),
        "faces": FaceImage.objects.count(),
        "galleries": Gallery.objects.count(),
        "audit": AuditEntry.objects.count(),
    }
    assert after == before
    store.start()
    assert own_s3_media.keys() == objects  # no orphan object either


def _upload(name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, photo_bytes(name), content_type="image/jpeg")


@pytest.mark.e2e
def test_a_search_whose_worker_cannot_read_the_probe_fails_with_the_reason_after_its_attempts(
    own_s3_media, north, start_worker
):
    job = probe_submit(case=north["case"], uploaded_by=north["alice"], data=photo_bytes("img5.jpg"))
    own_s3_media.server.kill()
    start_worker(**own_s3_media.env(), SEARCH_MAX_ATTEMPTS=2)
    failed = wait_for(job.id, lambda j: j.is_finished, timeout=90)
    assert failed.status == SearchJob.Status.FAILED
    assert failed.attempts == 2
    assert "The media storage cannot be reached (EndpointConnectionError)" in failed.error


def test_readyz_reports_the_store_down(own_s3_media, client):
    ready = client.get("/readyz").json()
    assert ready["checks"]["object_storage"] == {"ok": True, "detail": "the bucket answers"}
    assert ready["status"] != "down"

    own_s3_media.server.kill()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["status"] == "down"
    check = down.json()["checks"]["object_storage"]
    assert check["ok"] is False and "cannot be reached" in check["detail"]
    assert own_s3_media.server.endpoint_url.split("//")[1] not in json.dumps(down.json())  # no host named


def test_a_read_with_the_store_down_is_media_unavailable_not_a_missing_file(own_s3_media):
    from search.storage import media_store

    name = media_store("probes/north/one.jpg", b"\xff\xd8data")
    own_s3_media.server.kill()
    with pytest.raises(MediaUnavailable):
        default_storage.open(name)
    with pytest.raises(MediaUnavailable):
        media_store("probes/north/two.jpg", b"\xff\xd8data")
