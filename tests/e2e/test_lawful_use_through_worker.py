"""End to end through a real worker (issue 19): an agency whose policy asks for certified searchers and an
authorisation per case; `search_photo` refused and then run; a grant limited to one gallery; a watch-list alert
raised by `enroll_gallery` and opened as a comparison; a refusal that erases the case's search data."""

import io
import json
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.services import agency_create, user_create
from portal.models import AuditEntry, Case
from search import lawful_use, watchlist
from search.models import CaseAuthorisation, Probe, SearchJob, WatchlistAlert
from tests.base import PASSWORD, faces_dir, sign_in
from tests.factories import gallery_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

JUSTIFICATION = "Suspect seen on the station camera at the robbery."


def search_photo(photo: str) -> tuple[int, dict]:
    out = io.StringIO()
    code = 0
    try:
        call_command(
            "search_photo",
            str(faces_dir() / photo),
            "--agency=north",
            "--case=N-100",
            "--user=alice",
            "--purpose=Robbery",
            f"--justification={JUSTIFICATION}",
            "--json",
            stdout=out,
        )
    except SystemExit as exit_info:
        code = exit_info.code
    return code, json.loads(out.getvalue())


def test_policy_authorisation_watchlist_and_refusal_through_the_worker(start_worker, tmp_path):
    north = agency_create(slug="north", name="North Police", seats=5)
    alice = user_create(username="alice", password=PASSWORD, role=Role.OFFICER, agency=north)
    bob = user_create(username="bob", password=PASSWORD, role=Role.SUPERVISOR, agency=north)
    covered = gallery_make(owner=north, name="Covered", people={"P01": [faces_dir() / "img1.jpg"]})
    gallery_make(owner=north, name="Not covered", people={"P01 again": [faces_dir() / "img4.jpg"]})
    call_command(
        "set_policy",
        "--agency=north",
        "--authorisation-required=yes",
        "--certification-required=yes",
        stdout=io.StringIO(),
    )
    start_worker()

    # Not certified: refused with the reason, nothing stored.
    code, result = search_photo("img2.jpg")
    assert code == 1 and result["job"] is None
    assert "no face-search certification" in result["error"]
    assert not Probe.objects.exists()

    for username in ("alice", "bob"):
        call_command(
            "set_certification", username, "--trained-on=2026-01-05", "--valid-until=2099-12-31", stdout=io.StringIO()
        )
    alice.refresh_from_db()
    bob.refresh_from_db()
    code, result = search_photo("img2.jpg")
    assert code == 0, result
    first = SearchJob.objects.get(pk=result["job"])
    request = CaseAuthorisation.objects.get()
    assert (request.status, first.authorisation_id) == ("requested", request.id)
    assert {c["profile"] for f in result["faces"] for c in f["candidates"]} == {"P01", "P01 again"}

    # A grant limited to one gallery: the next search reads only that one.
    case = Case.objects.get(number="N-100")
    lawful_use.authorisation_grant(
        case=case,
        user=bob,
        authority="District Court of North",
        reference="DC-100",
        decided_on=timezone.localdate(),
        gallery_ids=[covered.id],
    )
    code, result = search_photo("img2.jpg")
    assert code == 0, result
    assert {c["profile"] for f in result["faces"] for c in f["candidates"]} == {"P01"}
    scoped = SearchJob.objects.get(pk=result["job"])
    assert scoped.authorisation.status == "granted"

    # The watch-list: the face of the scoped search, approved; a new photo of the same person enrolled later
    # into the covered gallery raises an alert that opens as an ordinary comparison.
    face = scoped.probe.faces.get(index=1)
    entry = watchlist.watchlist_propose(probe_face=face, user=alice, days=90, note="Unsolved robbery")
    watchlist.watchlist_decide(entry=entry, user=bob, approve=True, note="Agreed")
    folder = tmp_path / "later" / "P01 later"
    folder.mkdir(parents=True)
    shutil.copy(faces_dir() / "img5.jpg", folder / "img5.jpg")
    out = io.StringIO()
    call_command(
        "enroll_gallery",
        str(Path(folder).parent),
        "--agency=north",
        "--gallery=Covered",
        "--legal-basis=Test act",
        "--json",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert json.loads(out.getvalue())["faces_enrolled"] == 1
    alert = WatchlistAlert.objects.get()
    assert alert.candidate.profile.display_name == "P01 later"
    assert alert.distance <= alert.threshold
    client = Client()
    sign_in(client, alice)
    compare = reverse("search:candidate-compare", args=[alert.candidate.job.code, face.index, alert.candidate.rank])
    assert client.get(compare).status_code == 200

    # A refusal: the case's search data goes, further searches are refused, the audit stays whole.
    lawful_use.authorisation_refuse(
        case=case,
        user=bob,
        authority="District Court of North",
        reference="DC-101",
        decided_on=timezone.localdate(),
        reason="The renewal was refused as not proportionate.",
    )
    assert not SearchJob.objects.filter(probe__case=case).exists()
    assert not WatchlistAlert.objects.exists()
    code, result = search_photo("img2.jpg")
    assert code == 1 and "was refused" in result["error"]
    assert AuditEntry.objects.filter(case=case, action="search_started").count() == 2
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "The audit log is whole" in out.getvalue()
