"""The REST API: tokens, authentication, problem+json errors, scoping, the search flow, leads, rate limit,
pagination and filters, audit entries."""

import io
import json
from datetime import timedelta

import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import TestCase, override_settings
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, Role
from accounts.services import agency_set_seats, user_deactivate
from portal.models import AuditEntry, Case
from search import pipeline
from search.models import Probe, SearchJob
from tests.base import AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes
from tests.factories import case_make, comparison_entry, gallery_make, job_make

JUSTIFICATION = "Suspect seen on the station camera at the robbery."


def _features(value="similar"):
    return dict.fromkeys(comparison_entry().features, value)


class ApiTestCase(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.alice_token = tokens.api_token_create(user=cls.alice, name="alice script").token
        cls.bob_token = tokens.api_token_create(user=cls.bob, name="bob script").token
        cls.charlie_token = tokens.api_token_create(user=cls.charlie, name="charlie script").token

    def api(self, method, path, token=None, **kwargs):
        headers = {"Authorization": f"Bearer {token or self.alice_token}"} if token != "" else {}
        return getattr(self.client, method)(path, headers=headers, **kwargs)

    def assertProblem(self, response, status):
        self.assertEqual(response.status_code, status, response.content[:500])
        self.assertEqual(response["Content-Type"], "application/problem+json")
        body = response.json()
        self.assertEqual(body["status"], status)
        self.assertTrue(body["detail"])
        return body


class TokenTests(ApiTestCase):
    def test_the_secret_is_nowhere_in_the_database(self):
        made = tokens.api_token_create(user=self.alice, name="x")
        secret = made.token.split("_", 2)[2]
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM accounts_apitoken")
            rows = cursor.fetchall()
            cursor.execute("SELECT data::text, detail FROM portal_auditentry")
            rows += cursor.fetchall()
        self.assertNotIn(secret, repr(rows))
        self.assertEqual(len(made.api_token.secret_hash), 64)

    def test_expiry_with_a_controlled_clock(self):
        made = tokens.api_token_create(user=self.alice, name="short", days=2)
        self.assertEqual(self.api("get", "/api/v1/cases/", made.token).status_code, 200)
        with time_machine.travel(timezone.now() + timedelta(days=2, minutes=1)):
            body = self.assertProblem(self.api("get", "/api/v1/cases/", made.token), 401)
        self.assertIn("expired", body["detail"])

    def test_days_are_bounded(self):
        with self.assertRaises(tokens.TokenError):
            tokens.api_token_create(user=self.alice, name="long", days=366)
        made = tokens.api_token_create(user=self.alice, name="default")
        self.assertEqual((made.api_token.expires_at - made.api_token.created_at).days, 90)

    def test_revoked_by_the_user_and_by_their_agency_admin_not_another_agency(self):
        own = tokens.api_token_create(user=self.alice, name="a")
        tokens.api_token_revoke(actor=self.alice, api_token=own.api_token)
        self.assertProblem(self.api("get", "/api/v1/cases/", own.token), 401)
        other = tokens.api_token_create(user=self.alice, name="b")
        with self.assertRaises(tokens.TokenError):
            tokens.api_token_revoke(actor=self.dave, api_token=other.api_token)
        with self.assertRaises(tokens.TokenError):
            tokens.api_token_revoke(actor=self.bob, api_token=other.api_token)  # a supervisor, not the admin
        revoked = tokens.api_token_revoke(actor=self.erin, api_token=other.api_token)
        self.assertEqual(revoked.revoked_by, self.erin)
        self.assertEqual(AuditEntry.objects.filter(action=AuditEntry.Action.API_TOKEN_REVOKED).count(), 2)

    def test_revoke_through_the_api(self):
        made = tokens.api_token_create(user=self.alice, name="c")
        response = self.api("post", f"/api/v1/tokens/{made.api_token.code}/revoke/")
        self.assertEqual(response.status_code, 200)
        self.assertIsNotNone(response.json()["revoked_at"])
        charlie_sees = self.api("post", f"/api/v1/tokens/{made.api_token.code}/revoke/", self.charlie_token)
        self.assertProblem(charlie_sees, 404)

    def test_last_use_is_recorded_and_listed(self):
        self.api("get", "/api/v1/cases/")
        listed = self.api("get", "/api/v1/tokens/").json()
        self.assertEqual([t["name"] for t in listed], ["alice script"])
        self.assertIsNotNone(listed[0]["last_used_at"])
        self.assertNotIn("secret_hash", listed[0])

    def test_deactivated_user_and_ended_licence(self):
        user_deactivate(actor=self.erin, user=self.alice)
        self.assertProblem(self.api("get", "/api/v1/cases/"), 401)
        agency_set_seats(agency=self.south, seats=5, licence_until=timezone.localdate() - timedelta(days=1))
        body = self.assertProblem(self.api("get", "/api/v1/cases/", self.charlie_token), 401)
        self.assertIn("licence", body["detail"])

    def test_the_command(self):
        out = io.StringIO()
        call_command("create_api_token", "bob", "--name", "cli", "--days", "30", "--json", stdout=out)
        body = json.loads(out.getvalue())
        self.assertEqual(set(body), {"token", "token_id", "expires_at"})
        self.assertEqual(self.api("get", "/api/v1/cases/", body["token"]).status_code, 200)
        for args in (["nobody", "--name", "x"], ["bob", "--name", "x", "--days", "400"], ["bob", "--name", " "]):
            with self.assertRaises(CommandError):
                call_command("create_api_token", *args, "--json", stdout=io.StringIO())

    def test_the_command_exits_1(self):
        import os
        import subprocess
        import sys

        from django.db import connection

        # The real exit code of the command, run on the test database (a fresh clone's own has no tables).
        run = subprocess.run(
            [sys.executable, "manage.py", "create_api_token", "nobody-at-all", "--name", "x", "--json"],
            capture_output=True,
            text=True,
            env=os.environ | {"DATABASE_NAME": connection.settings_dict["NAME"]},
        )
        self.assertEqual(run.returncode, 1)
        self.assertIn("No user", run.stderr)


class AuthAndErrorTests(ApiTestCase):
    def test_missing_malformed_unknown(self):
        self.assertProblem(self.api("get", "/api/v1/cases/", ""), 401)
        for header in ("Bearer", "Basic abc", "Bearer nonsense", "Bearer fsp_000000000000_wrong"):
            response = self.client.get("/api/v1/cases/", headers={"Authorization": header})
            self.assertProblem(response, 401)
            self.assertEqual(response["WWW-Authenticate"], 'Bearer realm="api"')

    def test_a_session_is_not_enough(self):
        from tests.base import sign_in

        sign_in(self.client, self.alice)
        self.assertProblem(self.client.get("/api/v1/cases/"), 401)

    def test_an_expired_session_cookie_does_not_get_in_the_way(self):
        from tests.base import sign_in

        sign_in(self.client, self.alice)
        session = self.client.session
        session["last_activity"] = 0  # idle for decades: the pages would sign it out and redirect
        session.save()
        response = self.api("get", "/api/v1/cases/")
        self.assertEqual(response.status_code, 200)
        self.assertNotIn("sessionid", response.cookies)

    def test_404_route_and_405_method(self):
        self.assertProblem(self.api("get", "/api/v1/nothing-here/"), 404)
        self.assertProblem(self.api("get", "/api/elsewhere"), 404)
        self.assertProblem(self.api("delete", "/api/v1/cases/"), 405)
        self.assertProblem(self.api("put", f"/api/v1/cases/{self.case.code}/close/", ""), 405)  # method first
        strict = self.client_class(enforce_csrf_checks=True)  # no session, so no CSRF: a wrong path is a 404
        self.assertProblem(strict.post("/api/v1/nothing-here/"), 404)
        self.assertProblem(strict.post("/api/v1/cases/", {"number": "X"}), 401)

    def test_another_agencys_objects_are_404(self):
        job = job_make(case=self.case, uploaded_by=self.alice, data=photo_bytes("img2.jpg"), run=False)
        for path in (
            f"/api/v1/cases/{self.case.code}/",
            f"/api/v1/cases/{self.case.code}/searches/",
            f"/api/v1/searches/{job.code}/",
            f"/api/v1/searches/{job.code}/results/",
            f"/api/v1/searches/{job.code}/faces/1/candidates/1/",
        ):
            self.assertProblem(self.api("get", path, self.charlie_token), 404)
        self.assertProblem(self.api("post", f"/api/v1/cases/{self.case.code}/close/", self.charlie_token), 404)
        self.assertProblem(self.api("post", f"/api/v1/cases/{self.case.code}/report/", self.charlie_token), 404)

    @override_settings(API_RATE_PER_MINUTE=3)
    def test_rate_limit(self):
        made = tokens.api_token_create(user=self.alice, name="burst")
        for _ in range(3):
            self.assertEqual(self.api("get", "/api/v1/cases/", made.token).status_code, 200)
        response = self.api("get", "/api/v1/cases/", made.token)
        self.assertProblem(response, 429)
        self.assertGreaterEqual(int(response["Retry-After"]), 1)


class CaseTests(ApiTestCase):
    def test_create_read_close_and_duplicates(self):
        response = self.api("post", "/api/v1/cases/", data={"number": "N-777", "title": "Burglary"})
        self.assertEqual(response.status_code, 201)
        code = response.json()["id"]
        self.assertEqual(response["Location"], f"/api/v1/cases/{code}/")
        self.assertProblem(self.api("post", "/api/v1/cases/", data={"number": "N-777"}), 400)
        body = self.assertProblem(self.api("post", "/api/v1/cases/", data={}), 400)
        self.assertIn("number", body["errors"])
        closed = self.api("post", f"/api/v1/cases/{code}/close/").json()
        self.assertEqual(closed["status"], "closed")
        self.assertTrue(AuditEntry.objects.filter(action=AuditEntry.Action.CASE_CLOSED, case__code=code).exists())

    def test_pagination_and_filters(self):
        for i in range(3):
            case_make(created_by=self.alice, number=f"P-{i}")
        Case.objects.filter(number="P-0").update(status=Case.Status.CLOSED)
        page = self.api("get", "/api/v1/cases/?limit=2").json()
        self.assertEqual((page["count"], len(page["results"])), (4, 2))
        self.assertIsNotNone(page["next"])
        self.assertEqual(self.api("get", "/api/v1/cases/?status=closed").json()["count"], 1)
        tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
        self.assertEqual(self.api("get", f"/api/v1/cases/?created_after={tomorrow}").json()["count"], 0)
        self.assertEqual(self.api("get", f"/api/v1/cases/?created_before={tomorrow}").json()["count"], 4)
        self.assertProblem(self.api("get", "/api/v1/cases/?created_after=yesterday"), 400)
        self.assertProblem(self.api("get", "/api/v1/cases/?status=lost"), 400)
        self.assertEqual(self.api("get", "/api/v1/cases/", self.charlie_token).json()["count"], 0)


class SearchFlowTests(ApiTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        gallery_make(
            owner=cls.north,
            people={"P01": [faces_dir() / "img1.jpg"], "P02": [faces_dir() / "img16.jpg"]},
        )

    def submit(self, **data):
        fields = {"purpose": "Robbery", "justification": JUSTIFICATION} | data
        if "photo" not in fields:
            fields["photo"] = io.BytesIO(photo_bytes("img2.jpg"))
            fields["photo"].name = "probe.jpg"
        return self.api("post", f"/api/v1/cases/{self.case.code}/searches/", data=fields)

    def test_submit_poll_results_like_search_photo_json(self):
        response = self.submit()
        self.assertEqual(response.status_code, 202, response.content)
        body = response.json()
        self.assertEqual(response["Location"], body["url"])
        self.assertEqual(body["status"], "queued")
        job = SearchJob.objects.get(code=body["id"])
        self.assertEqual(job.face_choice.get("mode"), "all")
        pipeline.search_job_run(job_id=job.id)
        self.assertEqual(self.api("get", body["url"]).json()["status"], "done")
        results = self.api("get", body["results_url"]).json()
        from search.selectors import search_job_result

        job.refresh_from_db()
        expected = search_job_result(job=job)
        self.assertEqual(
            [{k: v for k, v in f.items() if k != "index"} for f in results["faces"]],
            [
                f
                | {
                    "candidates": [
                        c | {"url": results["faces"][i]["candidates"][j]["url"], "review": None}
                        for j, c in enumerate(f["candidates"])
                    ]
                }
                for i, f in enumerate(expected["faces"])
            ],
        )
        self.assertTrue(results["faces"][0]["candidates"])
        viewed = AuditEntry.objects.get(action=AuditEntry.Action.RESULTS_VIEWED, actor=self.alice)
        self.assertEqual((viewed.data["via"], viewed.target_id), ("api", str(job.pk)))
        self.assertTrue(AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_STARTED).exists())
        listed = self.api("get", f"/api/v1/cases/{self.case.code}/searches/?status=done").json()
        self.assertEqual(listed["count"], 1)

    def test_bad_input_stores_nothing(self):
        probes = Probe.objects.count()
        self.assertIn("justification", self.assertProblem(self.submit(justification=""), 400)["errors"])
        self.assertIn("purpose", self.assertProblem(self.submit(purpose=""), 400)["errors"])
        self.assertProblem(self.submit(purpose="Picnics"), 400)
        self.assertProblem(self.submit(justification="too short"), 400)
        text = io.BytesIO(b"not an image at all")
        text.name = "notes.txt"
        self.assertProblem(self.submit(photo=text), 400)
        gif = io.BytesIO(image_bytes("GIF"))
        gif.name = "x.gif"
        self.assertProblem(self.submit(photo=gif), 400)
        self.assertEqual(Probe.objects.count(), probes)

    def test_leads_two_people_with_records(self):
        job = job_make(case=self.case, uploaded_by=self.alice, data=photo_bytes("img2.jpg"))
        base = f"/api/v1/searches/{job.code}/faces/1/candidates/1/"
        record = {"features": _features(), "conclusion": "supports", "notes": "same scar"}
        body = self.assertProblem(
            self.api(
                "post",
                base + "mark/",
                data={"decision": "possible_lead", "conclusion": "supports"},
                content_type="application/json",
            ),
            400,
        )
        self.assertIn("features", body["errors"])
        marked = self.api(
            "post", base + "mark/", data=record | {"decision": "possible_lead"}, content_type="application/json"
        )
        self.assertEqual(marked.status_code, 200, marked.content)
        self.assertEqual(marked.json()["review"], "possible_lead")
        # The proposer cannot decide; the supervisor must verify blind first.
        self.assertProblem(
            self.api("post", base + "decide/", data={"confirm": True}, content_type="application/json"), 400
        )
        blind = self.api("get", base, self.bob_token).json()
        self.assertIsNone(blind["first_record"])
        self.assertTrue(blind["hidden"])
        self.assertProblem(
            self.api("post", base + "decide/", self.bob_token, data={"confirm": True}, content_type="application/json"),
            400,
        )
        verified = self.api("post", base + "verify/", self.bob_token, data=record, content_type="application/json")
        self.assertEqual(verified.status_code, 200, verified.content)
        self.assertEqual(verified.json()["first_record"]["examiner"], "alice")
        decided = self.api(
            "post",
            base + "decide/",
            self.bob_token,
            data={"confirm": True, "note": "agree"},
            content_type="application/json",
        )
        self.assertEqual(decided.json()["review"], "confirmed")
        actions = set(AuditEntry.objects.filter(target_type="search.candidate").values_list("action", flat=True))
        self.assertTrue({"lead_proposed", "lead_confirmed", "comparison_recorded", "comparison_viewed"} <= actions)


class ReportTests(ApiTestCase):
    def test_request_and_not_ready_download(self):
        response = self.api("post", f"/api/v1/cases/{self.case.code}/report/")
        self.assertEqual(response.status_code, 202)
        body = response.json()
        self.assertIsNone(body["download_url"])
        self.assertProblem(self.api("get", body["url"] + "download/"), 409)
        self.assertProblem(self.api("get", body["url"], self.charlie_token), 404)


_ = (ApiToken, Role)


class GalleryTests(ApiTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.gallery = gallery_make(owner=cls.north, people={"P01": [faces_dir() / "img1.jpg"]})
        cls.erin_token = tokens.api_token_create(user=cls.erin, name="erin script").token
        cls.dave_token = tokens.api_token_create(user=cls.dave, name="dave script").token

    def photo(self, name="img16.jpg"):
        upload = io.BytesIO(photo_bytes(name))
        upload.name = name
        return upload

    def test_admin_lists_and_enrols_photos(self):
        listed = self.api("get", "/api/v1/galleries/", self.erin_token).json()
        self.assertEqual([(g["name"], g["faces"]) for g in listed], [("Bookings", 1)])
        url = f"/api/v1/galleries/{self.gallery.code}/photos/"
        response = self.api("post", url, self.erin_token, data={"display_name": "P02", "photos": [self.photo()]})
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["enrolled"], 1)
        state = self.api("get", f"/api/v1/galleries/{self.gallery.code}/", self.erin_token).json()
        self.assertEqual((state["faces"], state["profiles"]), (2, 2))
        self.assertTrue(AuditEntry.objects.filter(action=AuditEntry.Action.GALLERY_ENROLLED, actor=self.erin))

    def test_refusals(self):
        url = f"/api/v1/galleries/{self.gallery.code}/photos/"
        self.assertProblem(self.api("get", "/api/v1/galleries/"), 403)  # an officer
        self.assertProblem(self.api("get", f"/api/v1/galleries/{self.gallery.code}/", self.dave_token), 404)
        self.assertProblem(
            self.api("post", url, self.dave_token, data={"display_name": "X", "photos": [self.photo()]}), 404
        )
        self.assertIn(
            "photos",
            self.assertProblem(self.api("post", url, self.erin_token, data={"display_name": "X"}), 400)["errors"],
        )
        text = io.BytesIO(b"hello")
        text.name = "x.txt"
        self.assertProblem(self.api("post", url, self.erin_token, data={"display_name": "X", "photos": [text]}), 400)
        nist = f"/api/v1/galleries/{self.gallery.code}/nist/"
        junk = io.BytesIO(b"not a nist file")
        junk.name = "x.an2"
        self.assertProblem(self.api("post", nist, self.erin_token, data={"files": [junk]}), 400)
        self.assertEqual(self.api("get", f"/api/v1/galleries/{self.gallery.code}/", self.erin_token).json()["faces"], 1)

    def test_nist_records_are_imported(self):
        from tests.search.test_import_nist import nist_message

        record = io.BytesIO(nist_message(photo_bytes("img16.jpg"), sid="SID-2002", nam="ROE,RICHARD"))
        record.name = "roe.an2"
        nist = f"/api/v1/galleries/{self.gallery.code}/nist/"
        response = self.api("post", nist, self.erin_token, data={"files": [record]})
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["faces_enrolled"], 1)
        state = self.api("get", f"/api/v1/galleries/{self.gallery.code}/", self.erin_token).json()
        self.assertEqual(state["faces"], 2)
