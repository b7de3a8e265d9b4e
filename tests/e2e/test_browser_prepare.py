"""Probe preparation in a real browser (Debian's chromium), against a live server and a real worker: a failed
upload keeps the chosen photo, the officer prepares a probe (rotate, crop by dragging, brightness), chooses its
face and searches it; the pages at a phone's width. Screenshots go to docs/screenshots/."""

import re

import pytest

from tests.base import faces_dir
from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

JUSTIFICATION = "CCTV still of the robbery suspect at the central station"


def overflowing(page) -> list[str]:
    """Elements reaching past the right edge of the window (a page that scrolls sideways on a phone)."""
    return page.evaluate(
        "Array.from(document.querySelectorAll('body *'))"
        ".filter(e => e.getClientRects().length && e.getBoundingClientRect().right > window.innerWidth + 1)"
        ".map(e => e.tagName.toLowerCase() + '.' + e.className).slice(0, 8)"
    )


def wait_for_faces(page) -> None:
    page.wait_for_selector("[data-prepare][data-ready=true]", timeout=60_000)


def test_the_officer_prepares_a_probe_and_searches_the_chosen_face(live_server, demo_with_worker, browser_page):
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in_with_totp(page, live_server.url, "demo-officer", demo_with_worker["demo-officer"])
    page.click("text=Open a case >> nth=0")
    page.fill("#id_number", "2026-0600")
    page.fill("#id_title", "Burglary on Harbour Street")
    page.click("button:has-text('Open the case')")
    page.wait_for_selector("h1:has-text('2026-0600')")

    # A validation error keeps the chosen photo chosen.
    page.set_input_files("input[type=file]", str(faces_dir() / "img5.jpg"))
    page.select_option("#id_purpose", "Robbery")
    page.fill("#id_justification", "too short")
    page.click("button:has-text('Prepare the photo first')")
    page.wait_for_selector("text=Your chosen photos are still selected")
    assert "at least 20 characters" in page.inner_text("[data-upload-form]")
    assert page.evaluate("document.querySelector('input[type=file]').files.length") == 1
    assert page.locator(".previews img").count() == 1

    page.fill("#id_justification", JUSTIFICATION)
    with page.expect_navigation(url=re.compile(r"/probes/[0-9a-f-]+/prepare/$")):
        page.click("button:has-text('Prepare the photo first')")
    wait_for_faces(page)
    assert page.locator("input[name=faces]").count() == 1
    assert page.is_checked("input[name=faces][value='1']")

    # Rotate a quarter turn and back, then crop by dragging across the photo.
    page.click("button:has-text('90° right')")
    wait_for_faces(page)
    page.click("button:has-text('90° left')")
    wait_for_faces(page)
    box = page.locator("[data-stage-image]").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.05)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.8, steps=8)
    page.mouse.up()
    width = int(page.input_value("[data-crop=width]"))
    assert 0.7 * 330 < width < 0.9 * 330  # img5.jpg is 330 px wide
    assert page.get_attribute("[data-crop-box]", "width") == str(width)
    page.click("[data-crop-form] button:has-text('Crop')")
    wait_for_faces(page)
    page.fill("[data-adjust=brightness]", "1.25")
    assert "brightness(1.25)" in page.evaluate("document.querySelector('[data-stage-image]').style.filter")
    page.click("button:has-text('Apply')")
    wait_for_faces(page)
    log = page.locator("[data-edit-log] li")
    assert log.count() == 4
    assert "Crop" in log.nth(2).inner_text() and "brightness 1.25" in log.nth(3).inner_text()

    # Bad input is refused with a message and changes nothing.
    page.fill("#rotate-degrees", "ninety")
    page.click("button:has-text('Rotate')")
    page.wait_for_selector("[data-prepare-error]")
    assert "must be a number" in page.inner_text("[data-prepare-error]")
    assert page.locator("[data-edit-log] li").count() == 4

    assert_accessible(page, "prepare")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "prepare.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert overflowing(page) == []
    page.screenshot(path=SCREENSHOTS / "prepare-390.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    with page.expect_navigation(url=re.compile(r"/searches/[0-9a-f-]+/$")):
        page.click("button:has-text('Search the chosen faces')")
    page.wait_for_selector("[data-job-status][data-finished=true]", timeout=90_000)
    first = page.locator(".candidate").first
    assert first.locator("h3").text_content().strip() == "Person P01"
    assert first.locator(".strength-label").text_content().strip() == "Likely candidate"
    assert "after 4 recorded edits: rotate, rotate, crop, brightness and contrast" in page.inner_text("[data-prepared]")

    # The pages at a phone's width: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    wait_for_images(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert overflowing(page) == []
    assert_accessible(page, "results at 390 px")
    page.screenshot(path=SCREENSHOTS / "results-390.png", full_page=True)
    page.click("text=Case 2026-0600")
    page.wait_for_selector("h1:has-text('2026-0600')")
    wait_for_images(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert overflowing(page) == []
    page.screenshot(path=SCREENSHOTS / "case-390.png", full_page=True)
