"""What the browser journeys share: signing in, waiting for images, the accessibility check, screenshots.
The fixtures (a browser page, the demo with a worker) are in conftest.py."""

from pathlib import Path

from django.conf import settings

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


def totp_now(secret_base32: str) -> str:
    import base64

    from django_otp.oath import TOTP

    return f"{TOTP(base64.b32decode(secret_base32)).token():06d}"


def sign_in_with_totp(page, base_url: str, username: str, login: dict) -> None:
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", login["password"])
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Second factor')")
    page.fill("#id_code", totp_now(login["totp_secret"]))
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("h1:has-text('Dashboard')")


def sign_out(page) -> None:
    page.click("button:has-text('Sign out') >> nth=0")
    page.wait_for_selector("h1:has-text('Sign in')")


def wait_for_images(page, timeout: float = 20) -> None:
    """Every image of the page loaded (they come from permission-checked views). Polled from here:
    wait_for_function would evaluate a string inside the page, which its CSP rightly forbids."""
    import time

    deadline = time.monotonic() + timeout
    check = "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    while not page.evaluate(check):
        assert time.monotonic() < deadline, "images did not load"
        time.sleep(0.1)


def assert_accessible(page, name: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name}: {serious}"
