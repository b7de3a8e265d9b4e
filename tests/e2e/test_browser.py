"""The investigator's flow in a real browser (Debian's chromium through Playwright), against a live
server and a real worker: sign in, open a case, upload, watch the search finish without reloading,
read the candidates, compare, open the profile. Screenshots go to docs/screenshots/ for the README."""

import io
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.base import faces_dir
from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp, sign_out, totp_now, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROBE = "img5.jpg"  # a photo of P01


def test_the_demo_officer_searches_a_photo_and_reads_the_result(live_server, demo_with_worker, browser_page):
    officer = demo_with_worker["demo-officer"]
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # The public page where a person asks what is held about them: no sign-in.
    page.goto(live_server.url + "/privacy/request/")
    assert "have it erased" in page.inner_text("h1")
    assert_accessible(page, "public request")

    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url
    assert "authorised law-enforcement purposes" in page.inner_text(".restricted")
    assert_accessible(page, "sign-in")
    page.screenshot(path=SCREENSHOTS / "sign-in.png")
    page.fill("#id_username", "demo-officer")
    page.fill("#id_password", "wrong password entirely")
    page.click("button[type=submit]")
    assert "not right" in page.inner_text(".form-error")
    page.fill("#id_username", "demo-officer")
    page.fill("#id_password", officer["password"])
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Second factor')")
    assert_accessible(page, "second factor")
    page.fill("#id_code", "123456" if totp_now(officer["totp_secret"]) != "123456" else "654321")
    page.click("button:has-text('Sign in')")
    assert "not right" in page.inner_text(".form-error")
    page.fill("#id_code", totp_now(officer["totp_secret"]))
    page.click("button:has-text('Sign in')")

    page.wait_for_selector("text=No open case yet")
    assert_accessible(page, "dashboard")
    page.click("text=Open a case >> nth=0")
    page.fill("#id_number", "2026-0412")
    page.fill("#id_title", "Robbery at the central station")
    page.click("button:has-text('Open the case')")
    page.wait_for_selector("h1:has-text('2026-0412')")
    assert_accessible(page, "case")

    page.set_input_files("input[type=file]", str(faces_dir() / PROBE))
    page.wait_for_selector(".previews img")
    page.select_option("#id_purpose", "Robbery")
    page.fill("#id_justification", "CCTV still of the robbery suspect at the central station")
    with page.expect_navigation(url=re.compile(r"/searches/[0-9a-f-]+/$")):
        page.click("button:has-text('Search')")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("[data-job-status][data-finished=true]", timeout=90_000)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    assert page.text_content("[data-status-label]").strip() == "Done"
    assert "not identifications" in page.text_content(".leads-banner")

    first = page.locator(".candidate").first
    assert first.locator("h3").text_content().strip() == "Person P01"
    assert first.locator(".strength-label").text_content().strip() == "Likely candidate"
    assert page.get_attribute("[data-decision]", "data-decision") == "likely"
    assert "gallery faces searched" in page.text_content(".open-set")
    assert "Demonstration data" in first.text_content()  # the gallery's legal basis
    # Ten candidates; the toggle hides those above the threshold.
    assert page.locator(".candidate").count() == 10
    likely = page.locator(".candidate[data-likely=true]").count()
    assert 1 <= likely < 10
    page.check("[data-only-likely]")
    assert page.locator(".candidate:visible").count() == likely
    page.uncheck("[data-only-likely]")
    assert_accessible(page, "results")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "results.png", full_page=True)

    first.locator("text=Compare").click()
    page.wait_for_selector("[data-compare]")
    assert "Person P01" in page.text_content("h1")
    page.fill("[data-fade-slider]", "100")
    assert page.evaluate("getComputedStyle(document.querySelector('[data-fade-top]')).opacity") == "1"
    assert_accessible(page, "compare")  # the comparison itself: tests/e2e/test_browser_compare.py
    page.evaluate("document.activeElement.blur()")  # arrow keys on a focused slider move the slider
    with page.expect_navigation(url=re.compile(r"/candidates/2/$")):
        page.keyboard.press("ArrowRight")
    with page.expect_navigation(url=re.compile(r"/candidates/1/$")):
        page.keyboard.press("ArrowLeft")

    page.click("text=Open the profile")
    page.wait_for_selector("h1:has-text('Person P01')")
    assert page.locator(".face-grid img").count() == 9  # P01's photos in identities.csv
    assert "2026-0412" in page.text_content("body")
    assert_accessible(page, "profile")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "profile.png", full_page=True)

    sign_out(page)

    # The agency admin invites an officer; the officer joins with a password and a new second factor,
    # and searches.
    sign_in_with_totp(page, live_server.url, "demo-admin", demo_with_worker["demo-admin"])
    page.click("nav >> text=Galleries")
    page.wait_for_selector("h1:has-text('Galleries of Demo Police Department')")
    page.select_option("#id_source_type", "wanted")
    page.fill("#id_new_name", "Wanted persons")
    page.fill("#id_legal_basis", "Criminal Procedure Act s.131")
    page.fill("#id_responsible_person", "Fugitive unit")
    page.fill("#id_retention_days", "730")
    page.fill("#id_display_name", "Sam Wanted")
    page.set_input_files("#id_photos", [str(faces_dir() / "couple.jpg"), str(faces_dir() / "img16.jpg")])
    page.click("button:has-text('Enrol')")
    page.wait_for_selector("text=2 of 2 photos done, 1 enrolled", timeout=60_000)
    assert "Two faces of similar size" in page.inner_text("[data-enrol-results]")
    assert_accessible(page, "galleries")
    page.screenshot(path=SCREENSHOTS / "galleries.png", full_page=True)
    page.click("nav >> text=Seats")
    page.wait_for_selector("h1:has-text('Seats of Demo Police Department')")
    assert "3 of 10 seats in use" in page.inner_text("body")
    page.fill("#id_email", "new.officer@demo.example")
    page.select_option("#id_role", "officer")
    page.click("button:has-text('Send the invitation')")
    page.wait_for_selector("text=Invitation sent to new.officer@demo.example")
    assert "4 of 10 seats in use" in page.inner_text("body")
    assert_accessible(page, "seats")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "seats.png", full_page=True)
    sign_out(page)

    from django.core import mail

    link = re.search(r"(http://\S+/accounts/invitations/\S+/)", mail.outbox[-1].body).group(1)
    page.goto(link)
    page.fill("#id_username", "new-officer")
    page.fill("#id_password", "a-fresh-officer-password")
    page.fill("#id_password_again", "a-fresh-officer-password")
    page.click("button:has-text('Create my account')")
    page.wait_for_selector("h1:has-text('Set up your second factor')")
    wait_for_images(page)  # the QR code
    assert_accessible(page, "enrol")
    page.screenshot(path=SCREENSHOTS / "second-factor.png", full_page=True)
    secret = page.inner_text(".secret").strip()
    page.fill("#id_code", totp_now(secret))
    page.click("button:has-text('Confirm and sign in')")
    page.wait_for_selector("h1:has-text('Your backup codes')")
    assert page.locator(".codes li").count() == 10
    page.click("text=Continue")
    page.wait_for_selector("h1:has-text('Dashboard')")
    page.click("text=Open a case >> nth=0")
    page.fill("#id_number", "2026-0413")
    page.fill("#id_title", "Second case")
    page.click("button:has-text('Open the case')")
    page.wait_for_selector("h1:has-text('2026-0413')")
    page.set_input_files("input[type=file]", str(faces_dir() / "img17.jpg"))
    page.select_option("#id_purpose", "Missing person")
    page.fill("#id_justification", "Photo provided by the family of a missing adult")
    with page.expect_navigation(url=re.compile(r"/searches/[0-9a-f-]+/$")):
        page.click("button:has-text('Search')")
    page.wait_for_selector("[data-job-status][data-finished=true]", timeout=90_000)
    assert page.locator(".candidate").first.locator("h3").text_content().strip() == "Person P06"
    case_url = page.url
    sign_out(page)

    # The second agency on the deployment sees none of it.
    sign_in_with_totp(page, live_server.url, "south-officer", demo_with_worker["south-officer"])
    assert "No open case yet" in page.inner_text("body")
    assert "2026-04" not in page.inner_text("body")
    response = page.goto(case_url)
    assert response.status == 404
    assert "Not found" in page.inner_text("h1")


@pytest.fixture
def demo_with_waiting_proposal() -> dict:
    """The demo, a search of the demo officer's run here in-process, and its first candidate proposed as a
    possible lead with the officer's comparison record: made before the browser starts (see demo_with_worker)."""
    from accounts.models import User
    from search.leads import candidate_mark
    from tests.factories import case_make, comparison_entry, job_make

    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    officer = User.objects.get(username="demo-officer")
    case = case_make(created_by=officer, number="2026-0500", title="Bag snatching at the market")
    job = job_make(case=case, uploaded_by=officer, data=(faces_dir() / PROBE).read_bytes())
    candidate = job.candidates.get(probe_face__index=1, rank=1)
    candidate_mark(
        user=officer,
        candidate=candidate,
        decision="possible_lead",
        comparison_entry=comparison_entry("strongly_supports", notes="same scar on the chin"),
    )
    return json.loads(Path(settings.DEMO_LOGINS_FILE).read_text())


def test_the_demo_supervisor_opens_the_review_queue_and_the_waiting_proposal(
    live_server, demo_with_waiting_proposal, browser_page
):
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in_with_totp(page, live_server.url, "demo-supervisor", demo_with_waiting_proposal["demo-supervisor"])
    page.click("nav >> text=Reviews (1)")
    page.wait_for_selector("h1:has-text('Proposals waiting for a decision')")
    row = page.locator("[data-review-row]")
    assert row.count() == 1
    assert "Person P01" in row.inner_text()
    assert "proposed by demo-officer" in row.inner_text()
    assert "same scar on the chin" not in row.inner_text()  # blind until the supervisor has recorded theirs
    assert "2026-0500" in row.inner_text()
    assert_accessible(page, "review queue")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "review-queue.png", full_page=True)
    row.locator("text=Verify (blind)").click()
    page.wait_for_selector("[data-compare]")
    assert "Person P01" in page.text_content("h1")
    assert page.locator("button:has-text('Save my comparison')").count() == 1
    assert page.locator("button:has-text('Confirm the lead')").count() == 0
