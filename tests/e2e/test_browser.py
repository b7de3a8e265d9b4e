"""The investigator's flow in a real browser (Debian's chromium through Playwright), against a live
server and a real worker: sign in, open a case, upload, watch the search finish without reloading,
read the candidates, compare, open the profile. Screenshots go to docs/screenshots/ for the README."""

import os
import re
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import Role
from accounts.services import agency_create, user_create
from search.services import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from tests.base import PASSWORD, faces_dir, identities

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
ENROLLED = ("P01", "P02", "P03", "P04", "P05", "P06")
PROBE = "img5.jpg"  # a photo of P01 that is not enrolled itself


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(settings.CHROMIUM_PATH):
        pytest.fail(f"No browser at {settings.CHROMIUM_PATH} (CHROMIUM_PATH): run scripts/install.sh, which installs "
                    "Debian's chromium.")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=settings.CHROMIUM_PATH, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def wait_for_images(page) -> None:
    """Every image of the page loaded (they come from permission-checked views)."""
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def assert_accessible(page, name: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
               if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: {serious}"


@pytest.fixture
def north_with_worker(start_worker):
    """North's officer and gallery, and a worker; made before the browser starts, since ORM calls made
    inside Playwright's event loop would open a connection that outlives the test."""
    agency = agency_create(slug="north", name="North Police", seats=5)
    user_create(username="alice", password=PASSWORD, role=Role.OFFICER, agency=agency)
    gallery, _ = gallery_get_or_create(owner=agency, name="North booking photos", legal_basis="Police Act s.64")
    items = [EnrolmentItem(path=str(faces_dir() / name), display_name=f"Person {identity}")
             for name, identity in identities().items() if identity in ENROLLED and name != PROBE]
    gallery_enrol_batch(gallery=gallery, gallery_created=True, items=items)
    start_worker()


def test_an_officer_searches_a_photo_and_reads_the_result(live_server, north_with_worker, browser_page):
    page = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url
    assert "authorised law-enforcement purposes" in page.inner_text(".restricted")
    assert_accessible(page, "sign-in")
    page.screenshot(path=SCREENSHOTS / "sign-in.png")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "wrong password entirely")
    page.click("button[type=submit]")
    assert "not right" in page.text_content(".form-error")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

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
    page.fill("#id_purpose", "robbery")
    with page.expect_navigation(url=re.compile(r"/searches/[0-9a-f-]+/$")):
        page.click("button:has-text('Search')")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("[data-job-status][data-finished=true]", timeout=90_000)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    assert page.text_content("[data-status-label]").strip() == "Done"
    assert "not identifications" in page.text_content(".leads-banner")

    first = page.locator(".candidate").first
    assert first.locator("h3").text_content().strip() == "Person P01"
    assert first.locator(".strength-label").text_content().strip() in ("Strong similarity", "Possible similarity")
    assert "Police Act s.64" in first.text_content()
    # Only one person is under the threshold; the toggle hides the others.
    total = page.locator(".candidate").count()
    assert total == len(ENROLLED)
    page.check("[data-only-likely]")
    assert page.locator(".candidate:visible").count() == 1
    page.uncheck("[data-only-likely]")
    assert_accessible(page, "results")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "results.png", full_page=True)

    first.locator("text=Compare").click()
    page.wait_for_selector("[data-compare]")
    assert "Person P01" in page.text_content("h1")
    page.fill("[data-fade-slider]", "100")
    assert page.evaluate("getComputedStyle(document.querySelector('[data-fade-top]')).opacity") == "1"
    assert_accessible(page, "compare")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "compare.png", full_page=True)
    page.evaluate("document.activeElement.blur()")  # arrow keys on a focused slider move the slider
    with page.expect_navigation(url=re.compile(r"/candidates/2/$")):
        page.keyboard.press("ArrowRight")
    with page.expect_navigation(url=re.compile(r"/candidates/1/$")):
        page.keyboard.press("ArrowLeft")

    page.click("text=Open the profile")
    page.wait_for_selector("h1:has-text('Person P01')")
    assert page.locator(".face-grid img").count() >= 2
    assert "2026-0412" in page.text_content("body")
    assert_accessible(page, "profile")
    wait_for_images(page)
    page.screenshot(path=SCREENSHOTS / "profile.png", full_page=True)
