"""The examiner's comparison in a real browser: the officer compares a result at full resolution (zoom and
pan in step, landmarks, wipe, flicker, the profile's other photos), records a structured conclusion and
proposes the lead; the supervisor verifies it blind, then sees both records and confirms. Screenshots go to
docs/screenshots/ (compare.png, compare-blind.png, compare-390.png)."""

import io
import json
import re
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.base import faces_dir
from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp, sign_out, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROBE = "img5.jpg"  # a photo of P01, who has nine photos in the demo gallery
CASE_NUMBER = "2026-0700"
FEATURES = ("face_shape", "eyes", "nose", "mouth", "ears", "marks")
FIRST_NOTE = "Same notch in the left eyebrow"


@pytest.fixture
def demo_with_a_search() -> dict:
    """The demo and a search of the demo officer's, run here in-process before the browser starts (see
    demo_with_worker): the logins and the search's results address."""
    from accounts.models import User
    from tests.factories import case_make, job_make

    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    officer = User.objects.get(username="demo-officer")
    case = case_make(created_by=officer, number=CASE_NUMBER, title="Phone theft on the tram")
    job = job_make(case=case, uploaded_by=officer, data=(faces_dir() / PROBE).read_bytes())
    return {"logins": json.loads(Path(settings.DEMO_LOGINS_FILE).read_text()), "results": f"/searches/{job.code}/"}


def layer_transforms(page) -> list[str]:
    return page.eval_on_selector_all("[data-layer]", "layers => layers.map(l => l.style.transform)")


def centre(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def fill_record(page, values: dict, conclusion: str, notes: str = "") -> None:
    for feature, value in values.items():
        page.check(f"input[name=feature_{feature}][value={value}]")
    if conclusion:
        page.check(f"input[name=conclusion][value={conclusion}]")
    if notes:
        page.fill("#record-notes", notes)


def test_an_examiner_compares_records_and_proposes_and_a_supervisor_verifies_blind_and_confirms(
    live_server, demo_with_a_search, browser_page
):
    page = browser_page
    logins = demo_with_a_search["logins"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in_with_totp(page, live_server.url, "demo-officer", logins["demo-officer"])
    page.goto(live_server.url + demo_with_a_search["results"])
    page.wait_for_selector("[data-job-status][data-finished=true]")
    page.locator(".candidate").first.locator("text=Compare").click()
    page.wait_for_selector("[data-compare]")
    assert "Person P01" in page.text_content("h1")
    wait_for_images(page)
    compare_url = page.url

    # Full resolution, zoomed and panned together: a wheel over the probe, a drag on the candidate.
    assert layer_transforms(page) == ["translate(0px, 0px) scale(1)"] * 2
    page.mouse.move(*centre(page, "[data-viewport=probe] [data-frame]"))
    page.mouse.wheel(0, -400)
    time.sleep(0.2)
    zoomed = layer_transforms(page)
    assert zoomed[0] == zoomed[1] and "scale(1)" not in zoomed[0], zoomed
    x, y = centre(page, "[data-viewport=candidate] [data-frame]")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 60, y + 30, steps=5)
    page.mouse.up()
    dragged = layer_transforms(page)
    assert dragged[0] == dragged[1] and dragged[0] != zoomed[0], dragged
    page.click("[data-zoom-in]")
    assert layer_transforms(page)[0] == layer_transforms(page)[1]
    page.click("[data-reset]")
    assert layer_transforms(page) == ["translate(0px, 0px) scale(1)"] * 2
    assert page.text_content("[data-zoom-level]") == "100%"
    page.click("[data-fit-face]")
    assert page.eval_on_selector_all("[data-base]", "bases => bases.map(b => b.dataset.fitted)") == ["face", "face"]

    # Landmarks: off by default, the engine's five points on each photo when asked for.
    assert not page.locator("[data-overlay] circle").first.is_visible()
    page.check("[data-landmarks-toggle]")
    assert page.locator("[data-overlay] circle:visible").count() == 10
    assert page.locator("[data-overlay] rect:visible").count() == 2

    # The aligned pair: wipe, flicker (it alternates; paused here), fade.
    page.fill("[data-wipe-slider]", "30")
    assert page.eval_on_selector("[data-wipe-top]", "img => img.style.clipPath") == "inset(0px 0px 0px 70%)"
    assert page.get_attribute("[data-flicker-toggle]", "aria-pressed") == "true"
    seen = {page.text_content("[data-flicker-label]")}
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        seen.add(page.text_content("[data-flicker-label]"))
    assert seen == {"Probe", "Candidate"}
    page.click("[data-flicker-toggle]")
    assert page.get_attribute("[data-flicker-toggle]", "aria-pressed") == "false"
    page.fill("[data-fade-slider]", "100")
    assert page.evaluate("getComputedStyle(document.querySelector('[data-fade-top]')).opacity") == "1"

    # The profile's other photos replace the candidate's in its viewport, then the one found comes back.
    choices = page.locator("[data-photo-choice]")
    assert choices.count() == 9  # P01's photos in identities.csv
    second_url = choices.nth(1).get_attribute("data-url")
    choices.nth(1).click()
    assert page.get_attribute("[data-viewport=candidate] [data-photo]", "src") == second_url
    assert choices.nth(1).get_attribute("aria-pressed") == "true"
    wait_for_images(page)
    choices.nth(0).click()
    wait_for_images(page)

    # The keys change the candidate, but not from a slider or the form.
    page.focus("[data-wipe-slider]")
    page.keyboard.press("ArrowRight")
    page.focus("input[name=feature_eyes][value=similar]")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Escape")
    time.sleep(0.3)
    assert page.url == compare_url

    # The structured record: a missing feature is named, then the whole record proposes the lead.
    fill_record(page, {f: "similar" for f in FEATURES if f != "ears"}, "strongly_supports", FIRST_NOTE)
    page.click("button:has-text('Propose as a possible lead')")
    page.wait_for_selector("#feature_ears-error")
    assert "Choose similar, different or not visible for ears." in page.text_content("#feature_ears-error")
    assert page.is_checked("input[name=feature_eyes][value=similar]")  # the rest is kept
    page.goto(compare_url)  # afresh, for the screenshot: the whole record, one of the profile's other photos
    wait_for_images(page)
    fill_record(page, dict.fromkeys(FEATURES, "similar") | {"ears": "not_visible"}, "strongly_supports", FIRST_NOTE)
    page.click("[data-flicker-toggle]")
    page.check("[data-landmarks-toggle]")
    page.click("[data-fit-face]")
    choices.nth(2).click()
    wait_for_images(page)
    assert_accessible(page, "compare")
    page.screenshot(path=SCREENSHOTS / "compare.png", full_page=True)
    page.click("button:has-text('Propose as a possible lead')")
    page.wait_for_selector("text=Proposed as a possible lead")
    assert "The first examiner's record" in page.text_content("[data-records]")
    sign_out(page)

    # The supervisor: the queue names the proposer, not the note or the conclusion.
    sign_in_with_totp(page, live_server.url, "demo-supervisor", logins["demo-supervisor"])
    page.click("nav >> text=Reviews (1)")
    row = page.locator("[data-review-row]")
    assert "proposed by demo-officer" in row.inner_text()
    assert CASE_NUMBER in row.inner_text()
    assert FIRST_NOTE not in page.content()
    assert "strongly supports" not in row.inner_text().lower()
    row.locator("text=Verify (blind)").click()
    page.wait_for_selector("[data-blind]")
    assert FIRST_NOTE not in page.content()
    assert page.locator("[data-records]").count() == 0
    assert page.locator("button:has-text('Confirm the lead')").count() == 0

    # Asking for the first record by name before recording: refused.
    response = page.goto(compare_url + "?records=first")
    assert response.status == 403
    assert "Record your own comparison and conclusion first" in page.inner_text("[data-refusal]")
    assert FIRST_NOTE not in page.content()
    page.click("text=Back to the comparison")
    page.wait_for_selector("[data-blind]")
    wait_for_images(page)
    fill_record(page, {f: "similar" for f in FEATURES if f != "marks"} | {"marks": "not_visible"}, "")
    assert_accessible(page, "compare, blind")
    page.screenshot(path=SCREENSHOTS / "compare-blind.png", full_page=True)

    # The supervisor records theirs, then sees both, the differences marked, and confirms.
    page.check("input[name=conclusion][value=supports]")
    page.fill("#record-notes", "Ears hidden by hair in the probe")
    page.click("button:has-text('Save my comparison')")
    page.wait_for_selector("[data-records]")
    records = page.text_content("[data-records]")
    assert FIRST_NOTE in records and "Ears hidden by hair in the probe" in records
    assert "First examiner: demo-officer" in records and "Verifier: demo-supervisor" in records
    assert page.locator("[data-records] tr.differ").count() == 3  # ears, marks, the conclusion
    assert page.locator("[data-records] tr.agree").count() == 4
    assert page.goto(compare_url + "?records=first").status == 200
    assert_accessible(page, "compare, both records")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    wait_for_images(page)
    page.check("[data-landmarks-toggle]")
    assert layer_transforms(page)[0] == layer_transforms(page)[1]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page, "compare at 390 px")
    page.screenshot(path=SCREENSHOTS / "compare-390.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.fill("#decide-note", "Agree: eyes, nose and mouth")
    page.click("button:has-text('Confirm the lead')")
    page.wait_for_selector("text=Lead confirmed by a second person.")
    assert "Confirmed by demo-supervisor" in page.inner_text(".review-state")
    assert page.locator("nav >> text=Reviews (0)").count() == 1
    assert re.search(r"/candidates/1/$", page.url)
