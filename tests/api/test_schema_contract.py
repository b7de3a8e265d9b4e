"""Contract tests from the schema: schemathesis generates requests from /api/v1/openapi.json and sends them
to the live API with a real token. No 5xx, and every response as the schema says (status, content type,
body). At most 10 examples per operation and well under 3 minutes in all; the token's own revocation is left
out (it would end the run), and the rate limit is lifted for this test only."""

from __future__ import annotations

import time

import pytest
import requests
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import tokens
from accounts.models import Role
from portal.services import case_report_request
from tests.base import faces_dir, photo_bytes
from tests.factories import agency_make, case_make, comparison_entry, gallery_make, job_make, user_make

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
LEFT_OUT = {"tokens_revoke"}  # the token's own revocation would end the run
MAX_EXAMPLES = 10
BUDGET_SECONDS = 150


@override_settings(API_RATE_PER_MINUTE=1_000_000)
def test_the_api_keeps_its_schema(live_server):
    agency = agency_make("north")
    officer = user_make("olive", agency=agency, role=Role.AGENCY_ADMIN)  # reaches every resource, galleries too
    user_make("sam", agency=agency, role=Role.SUPERVISOR)
    case = case_make(created_by=officer)
    gallery = gallery_make(owner=agency, people={"P01": [faces_dir() / "img1.jpg"], "P02": [faces_dir() / "img16.jpg"]})
    job = job_make(case=case, uploaded_by=officer, data=photo_bytes("img2.jpg"))
    report = case_report_request(case=case, user=officer)
    token = tokens.api_token_create(user=officer, name="contract test").token
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    tested = []
    for operation in operations:
        if operation.definition.raw.get("operationId") in LEFT_OUT:
            continue
        assert time.monotonic() - started < BUDGET_SECONDS, f"over budget before {operation.label}"

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            case.call_and_validate(base_url=live_server.url, session=session, checks=CHECKS, timeout=30)

        check()
        tested.append(operation.label)
    assert "POST /api/v1/cases/{code}/searches/" in tested

    # Then the real objects, whose answers random ids never reach: a finished search, its candidate, a report.
    candidate = {"code": str(job.code), "face": 1, "rank": 1}
    real = {
        "cases_read": {"code": str(case.code)},
        "searches_list": {"code": str(case.code)},
        "searches_read": {"code": str(job.code)},
        "searches_results": {"code": str(job.code)},
        "candidates_read": candidate,
        "case_report_read": {"code": str(report.code)},
        "case_report_download": {"code": str(report.code)},
        "galleries_read": {"code": str(gallery.code)},
    }
    by_id = {op.definition.raw.get("operationId"): op for op in operations}
    for operation_id, parameters in real.items():
        response = (
            by_id[operation_id]
            .Case(path_parameters=parameters)
            .call_and_validate(base_url=live_server.url, session=session, checks=CHECKS, timeout=30)
        )
        assert response.status_code in (200, 409), (operation_id, response.status_code, response.text[:300])
    record = {"features": dict(comparison_entry().features), "conclusion": "supports", "notes": "same scar"}
    marked = (
        by_id["candidates_mark"]
        .Case(path_parameters=candidate, body=record | {"decision": "possible_lead"}, media_type="application/json")
        .call_and_validate(base_url=live_server.url, session=session, checks=CHECKS, timeout=30)
    )
    assert marked.status_code == 200, marked.text[:300]
    assert time.monotonic() - started < 180
