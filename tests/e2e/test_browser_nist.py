"""The agency admin imports ANSI/NIST-ITL booking records on the galleries page, in a real browser."""

import re

import pytest

from tests.base import faces_dir
from tests.e2e.browser import SCREENSHOTS, assert_accessible, sign_in_with_totp
from tests.search.test_import_nist import nist_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_admin_imports_booking_records_and_reads_each_outcome(
    live_server, demo_with_worker, browser_page, tmp_path
):
    openset = faces_dir().parent / "openset"
    good = tmp_path / "clapton-booking.an2"
    good.write_bytes(
        nist_message(
            (openset / "clapton-1.jpg").read_bytes(),
            (openset / "clapton-2.jpg").read_bytes(),
            sid="SID-2026-0001",
            nam="CLAPTON,ERIC",
            dob="19450330",
        )
    )
    cut = tmp_path / "damaged-export.an2"
    cut.write_bytes(nist_message((openset / "adams.jpg").read_bytes(), sid="SID-2026-0002")[:-700])
    scar = tmp_path / "tattoo-only.eft"
    scar.write_bytes(nist_message((openset / "carell.jpg").read_bytes(), sid="SID-2026-0003", image_type="SMT"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser_page
    sign_in_with_totp(page, live_server.url, "demo-admin", demo_with_worker["demo-admin"])
    page.click("nav >> text=Galleries")
    page.wait_for_selector("h2:has-text('Import booking records (ANSI/NIST-ITL)')")
    page.select_option("#id_nist-source_type", "booking")
    page.fill("#id_nist-new_name", "Booking records 2026")
    page.fill("#id_nist-legal_basis", "Police Act s.64")
    page.fill("#id_nist-responsible_person", "Custody records unit")
    page.fill("#id_nist-retention_days", "3650")
    page.set_input_files("#id_nist-records", [str(good), str(cut), str(scar)])
    page.click("button:has-text('Import')")
    page.wait_for_selector("text=3 of 3 files done, 2 faces imported", timeout=60_000)
    # The pace of the batch: how long it took, files per second (while running: the time left at that pace).
    assert re.search(
        r"files done, 2 faces imported · in \d+ s \(\d+\.\d files/s\)", page.inner_text("[data-nist-count]")
    )
    results = page.inner_text("[data-nist-results]")
    assert "clapton-booking.an2: 2 faces imported into Booking records 2026" in results
    assert "damaged-export.an2: refused — The file is truncated" in results
    assert "tattoo-only.eft: refused — No face record" in results
    assert_accessible(page, "galleries with NIST import")
    page.locator("[data-nist-form]").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "nist-import.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=SCREENSHOTS / "nist-import-phone.png", full_page=True)
