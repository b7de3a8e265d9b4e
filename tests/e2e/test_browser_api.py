"""The API in a browser: its documentation renders from the portal's own files under the strict CSP, and an
officer makes a token on the tokens page, shown once; then that token reads the API."""

import pytest
import requests

from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_docs_render_and_a_token_is_made(live_server, demo_with_worker, browser_page):
    page = browser_page
    logins = demo_with_worker
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))

    page.goto(live_server.url + "/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    page.wait_for_selector("text=Investigative face search API")
    assert not [p for p in problems if "Content Security Policy" in p or "failed" in p], problems
    assert page.locator(".opblock").count() >= 15
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "api-docs-phone.png"))
    page.set_viewport_size({"width": 1280, "height": 900})

    sign_in_with_totp(page, live_server.url, "demo-officer", logins["demo-officer"])
    page.click("a:has-text('API tokens')")
    page.wait_for_selector("h1:has-text('API tokens')")
    page.fill("#token-name", "Case-management export")
    page.click("button:has-text('Make the token')")
    page.wait_for_selector("text=shown only this once")
    token = page.input_value("#new-token")
    assert token.startswith("fsp_")
    assert_accessible(page, "API tokens")
    page.screenshot(path=str(SCREENSHOTS / "api-tokens.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "api-tokens-phone.png"), full_page=True)
    assert not [p for p in problems if "Content Security Policy" in p], problems

    response = requests.get(
        live_server.url + "/api/v1/cases/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    page.reload()
    assert token not in page.content()  # shown once
