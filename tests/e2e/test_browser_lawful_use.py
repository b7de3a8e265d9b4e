"""Lawful use in a real browser: a supervisor answers a case's authorisation request on the case page, and an
agency admin reads the yearly usage report. Screenshots go to docs/screenshots/ (authorisation.png,
authorisation-390.png, lawful-use.png, usage.png)."""

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.base import faces_dir
from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp, sign_out

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_case_in_its_urgent_window() -> dict:
    """The demo, an agency policy that asks for an authorisation per case, and a first search of the demo
    officer's (run here in-process before the browser starts): the case's request is open."""
    from accounts.models import Agency, User
    from accounts.services import agency_policy_set
    from tests.factories import case_make, job_make

    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    agency = Agency.objects.get(users__username="demo-officer")
    agency_policy_set(agency=agency, actor=None, authorisation_required=True)
    officer = User.objects.get(username="demo-officer")
    case = case_make(created_by=officer, number="2026-0910", title="Bag snatching at the market")
    job_make(
        case=case,
        uploaded_by=officer,
        data=(faces_dir() / "img5.jpg").read_bytes(),
        purpose="Robbery",
        justification="Market camera still of the bag snatcher",
    )
    return {"logins": json.loads(Path(settings.DEMO_LOGINS_FILE).read_text()), "case": f"/cases/{case.code}/"}


def test_a_supervisor_records_the_grant_and_an_admin_reads_the_usage_report(
    live_server, demo_case_in_its_urgent_window, browser_page
):
    page = browser_page
    logins = demo_case_in_its_urgent_window["logins"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in_with_totp(page, live_server.url, "demo-supervisor", logins["demo-supervisor"])
    page.goto(live_server.url + demo_case_in_its_urgent_window["case"])
    assert "Urgent use." in page.text_content("[data-urgent-window]")
    page.click("text=Record the authority's answer")
    grant = page.locator("[data-grant-form]")
    grant.locator("input[name=authority]").fill("Market District Court")
    grant.locator("input[name=reference]").fill("MDC-2026-0417")
    grant.locator("input[name=decided_on]").fill("2026-11-30")
    grant.locator("input[name=valid_until]").fill("2027-02-28")
    grant.locator("button:has-text('Record the grant')").click()
    page.wait_for_selector("[data-authorised]")
    assert "Authorised by Market District Court, MDC-2026-0417" in page.text_content("[data-authorised]")
    assert_accessible(page, "case page with its authorisation")
    page.locator("[data-lawful-use]").screenshot(path=str(SCREENSHOTS / "authorisation.png"))
    page.set_viewport_size({"width": 390, "height": 900})
    page.locator("[data-lawful-use]").screenshot(path=str(SCREENSHOTS / "authorisation-390.png"))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/lawful-use/")
    assert "Required" in page.text_content("[data-policy-authorisation]")
    assert_accessible(page, "lawful use page")
    page.screenshot(path=str(SCREENSHOTS / "lawful-use.png"), full_page=True)
    sign_out(page)

    sign_in_with_totp(page, live_server.url, "demo-admin", logins["demo-admin"])
    page.click("nav >> text=Usage")
    page.wait_for_selector("[data-outcome-chart]")
    assert "1 search, by how far they got" in page.text_content("h2#outcome-title")
    assert page.text_content("[data-outcome=likely_candidate] td:last-child") == "1"
    assert_accessible(page, "usage report")
    page.screenshot(path=str(SCREENSHOTS / "usage.png"), full_page=True)
