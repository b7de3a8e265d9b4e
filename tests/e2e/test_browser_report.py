"""The case report in a real browser, against a live server and a real worker: the officer asks for the
report on the case page, its card turns "Being prepared" into the download link without a reload, and the
PDF downloaded leads with the summary. Screenshots go to docs/screenshots/."""

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from PIL import Image
from pypdf import PdfReader

from tests.base import faces_dir
from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CASE_NUMBER = "2026-0610"


def _blank_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (128, 128, 120)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def demo_case_with_searches(start_worker) -> dict:
    """The demo, a case of the demo officer's with two searches run here in-process (a photo of P01 whose
    first candidate the supervisor confirmed, and a photo with no face), and a function that starts the
    worker: started only once the page shows the report being prepared, so the swap is seen. All ORM work
    happens before the browser starts (see demo_with_worker)."""
    from accounts.models import User
    from search.models import ComparisonRecord, LeadReview
    from tests.factories import case_make, job_make

    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    officer = User.objects.get(username="demo-officer")
    supervisor = User.objects.get(username="demo-supervisor")
    case = case_make(created_by=officer, number=CASE_NUMBER, title="Pickpocketing on line 4")
    job = job_make(
        case=case,
        uploaded_by=officer,
        data=(faces_dir() / "img5.jpg").read_bytes(),
        original_name="platform-camera.jpg",
    )
    job_make(case=case, uploaded_by=officer, data=_blank_photo(), original_name="dark-frame.jpg")
    candidate = job.candidates.get(probe_face__index=1, rank=1)
    now = timezone.now()
    LeadReview.objects.create(
        candidate=candidate,
        status=LeadReview.Status.CONFIRMED,
        proposed_by=officer,
        proposed_at=now - timedelta(minutes=20),
        reviewed_by=supervisor,
        reviewed_at=now - timedelta(minutes=5),
    )
    for examiner, role, conclusion in ((officer, "proposer", "supports"), (supervisor, "verifier", "supports")):
        ComparisonRecord.objects.create(
            candidate=candidate, examiner=examiner, role=role, conclusion=conclusion, created_at=now
        )
    logins = json.loads(Path(settings.DEMO_LOGINS_FILE).read_text())
    return {"logins": logins, "start_worker": start_worker}


def test_the_report_card_turns_into_the_download_link_without_a_reload(
    live_server, demo_case_with_searches, browser_page, tmp_path
):
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in_with_totp(page, live_server.url, "demo-officer", demo_case_with_searches["logins"]["demo-officer"])
    page.click("nav >> text=Cases")
    page.click(f"text={CASE_NUMBER}")
    page.wait_for_selector(f"h1:has-text('{CASE_NUMBER}')")
    assert "No report yet" in page.inner_text(".case-report")

    page.click("button:has-text('Prepare a PDF report')")
    page.wait_for_selector(".case-report [data-report-status]")
    assert page.inner_text(".case-report [data-report-badge]").strip() == "Being prepared"
    page.evaluate("window.__notReloaded = true")
    demo_case_with_searches["start_worker"]()
    page.wait_for_selector(".case-report [data-report-finished=true]", timeout=90_000)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    assert page.inner_text(".case-report [data-report-badge]").strip() == "Ready"
    link = page.locator(".case-report [data-report-name] a")
    assert link.count() == 1

    assert_accessible(page, "case report card")
    wait_for_images(page)
    card = page.locator(".case-report")
    card.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "case-report.png", full_page=True)

    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == f"case-{CASE_NUMBER}-report.pdf"
    target = tmp_path / "report.pdf"
    download.save_as(target)
    pages = [" ".join((p.extract_text() or "").split()) for p in PdfReader(target).pages]
    assert f"Case report — {CASE_NUMBER}" in pages[0]
    assert "A lead is not an identification" in pages[0]
    assert "Person P01" in pages[0]
    assert "2 — 0 found no likely candidate, 1 found no face" in pages[0]
    details = " ".join(pages[1:])
    assert "Search 1 · platform-camera.jpg" in details
    assert "Search 2 · dark-frame.jpg" in details
    assert "No face found in the photo" in details
    assert "Sign-off" in pages[-1]

    # On a phone: the card stays readable, the link and the button reachable.
    page.set_viewport_size({"width": 390, "height": 844})
    # The card itself fits a phone's width (the case page's head is another feature's: see the report).
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('.case-report, .case-report *'))"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName)"
    )
    assert wide == [], f"the report card is wider than the phone: {wide}"
    assert_accessible(page, "case report card on a phone")
    card.screenshot(path=SCREENSHOTS / "case-report-phone.png")
