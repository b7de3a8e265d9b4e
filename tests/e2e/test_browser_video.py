"""In a real browser, with a real worker: the demo officer opens a case, uploads a recorded video (an MP4 made
here from a shared photo of P01), waits for the proposed stills, picks one, searches it and reads the result.
Screenshots: docs/screenshots/video-stills.png and video-stills-390.png (the pick page)."""

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp, wait_for_images
from tests.search.test_video_stills import make_video

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def recorded_video():
    folder = Path(tempfile.mkdtemp(prefix="e2e-video-"))
    yield make_video(folder / "station-cctv.mp4", seconds=8, sharp=(3.0, 3.6), blank=(5.0, 6.5))
    shutil.rmtree(folder, ignore_errors=True)


def test_the_officer_searches_a_still_of_a_recorded_video(live_server, demo_with_worker, browser_page, recorded_video):
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in_with_totp(page, live_server.url, "demo-officer", demo_with_worker["demo-officer"])
    page.click("text=Open a case >> nth=0")
    page.fill("#id_number", "2026-0533")
    page.fill("#id_title", "Robbery recorded by the station's camera")
    page.click("button:has-text('Open the case')")
    page.wait_for_selector("h1:has-text('2026-0533')")
    assert "Stills from a recorded video" in page.inner_text("[data-video-card]")

    page.set_input_files("#id_video-file", str(recorded_video))
    page.select_option("#id_video-purpose", "Robbery")
    page.fill("#id_video-justification", "Camera recording of the robbery at the central station")
    with page.expect_navigation(url=re.compile(r"/videos/[0-9a-f-]+/$")):
        page.click("button:has-text('Find stills')")
    # The page follows the worker and shows the stills when they are ready.
    page.wait_for_selector("[data-still-form]", timeout=120_000)
    assert page.text_content("[data-status-label]").strip() == "Stills ready"
    stills = page.locator(".still")
    assert 5 <= stills.count() <= 8
    best_time = stills.first.locator(".still-time").text_content().strip()
    assert re.fullmatch(r"00:03\.[0-5]\d\d", best_time), best_time
    assert page.is_checked("#still-1") and not page.is_checked("#still-2")
    assert page.text_content("[data-chosen-count]").strip() == f"1 of {stills.count()} chosen"
    wait_for_images(page)
    assert_accessible(page, "video stills")
    page.screenshot(path=SCREENSHOTS / "video-stills.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page, "video stills at 390 px")
    page.screenshot(path=SCREENSHOTS / "video-stills-390.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Unticking every still leaves nothing to search; the best one it is.
    page.uncheck("#still-1")
    assert page.is_disabled("[data-search-button]")
    page.check("#still-1")
    with page.expect_navigation(url=re.compile(r"/searches/[0-9a-f-]+/$")):
        page.click("button:has-text('Search the chosen stills')")
    assert f"station-cctv.mp4 at {best_time}" in page.text_content("h1")
    assert f"A still at {best_time} of the video station-cctv.mp4" in page.text_content("[data-video-still]")
    page.wait_for_selector("[data-job-status][data-finished=true]", timeout=90_000)
    first = page.locator(".candidate").first
    assert first.locator("h3").text_content().strip() == "Person P01"
    assert first.locator(".strength-label").text_content().strip() == "Likely candidate"
    assert_accessible(page, "results of a still")

    # The case page lists the video with its state.
    page.click(".breadcrumbs a")
    page.wait_for_selector("[data-video-list]")
    assert "Stills ready" in page.inner_text("[data-video-list]")
