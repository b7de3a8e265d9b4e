"""Lawful use (issue 19): the agency's policy, certified searchers and the authorisation per case, on every
path (page, command, API), with a controlled clock; a refusal erases the case's search data and leaves the
audit whole."""

import io
import json
from datetime import date, timedelta
from pathlib import Path

import time_machine
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts import tokens
from accounts.models import AgencyPolicy, Role
from accounts.services import agency_policy_set, user_certification_set
from portal.models import AuditEntry, CaseReport
from portal.services import case_report_request
from search import lawful_use
from search.models import CaseAuthorisation, OffenseCategory, Probe, ProbeFace, SearchJob
from search.services import SearchRefused
from tests.base import AgencyFixtureMixin, faces_dir, photo_bytes, sign_in
from tests.factories import case_make, gallery_make, job_make, user_make

JUSTIFICATION = "Suspect seen on the station camera at the robbery."
START = timezone.make_aware(timezone.datetime(2026, 3, 2, 9, 0))


def _submit(case, user, photo="img2.jpg", **options):
    options = {"purpose": "Robbery", "justification": JUSTIFICATION} | options
    return job_make(case=case, uploaded_by=user, data=photo_bytes(photo), run=False, **options)


def _media_exists(name: str) -> bool:
    return bool(name) and (Path(settings.MEDIA_ROOT) / name).exists()


class DefaultPolicyTests(AgencyFixtureMixin, TestCase):
    """An agency without a policy row asks for none of it: today's contracts keep working."""

    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_no_policy_row_means_nothing_required(self):
        self.assertFalse(AgencyPolicy.objects.filter(agency=self.north).exists())
        job = _submit(self.case, self.alice)
        self.assertIsNone(job.authorisation)
        self.assertFalse(CaseAuthorisation.objects.exists())
        started = AuditEntry.objects.get(action="search_started")
        self.assertNotIn("authorisation", started.data)

    def test_the_case_page_says_nothing_of_authorisations(self):
        sign_in(self.client, self.alice)
        page = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
        self.assertNotIn("data-lawful-use", page)
        page = self.client.get(reverse("search:lawful-use")).content.decode()
        self.assertIn("Not required.", page)


class CertificationTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        agency_policy_set(agency=cls.north, actor=None, certification_required=True)

    def test_no_search_without_a_certification_and_the_refusal_is_audited(self):
        with self.assertRaisesMessage(SearchRefused, "no face-search certification on record"):
            _submit(self.case, self.alice)
        self.assertEqual(SearchJob.objects.count(), 0)
        self.assertEqual(Probe.objects.count(), 0)
        refused = AuditEntry.objects.get(action="search_refused")
        self.assertEqual((refused.actor, refused.case, refused.agency), (self.alice, self.case, self.north))

    def test_a_current_certification_searches_and_an_expired_one_does_not(self):
        with time_machine.travel(START, tick=False):
            user_certification_set(
                actor=self.erin, user=self.alice, trained_on=date(2026, 1, 10), certified_until=date(2026, 12, 31)
            )
            self.assertEqual(_submit(self.case, self.alice).status, SearchJob.Status.QUEUED)
        with time_machine.travel(timezone.make_aware(timezone.datetime(2027, 1, 1, 8, 0)), tick=False):
            with self.assertRaisesMessage(SearchRefused, "certification expired on 2026-12-31"):
                _submit(self.case, self.alice)
        self.assertEqual(SearchJob.objects.count(), 1)

    def test_the_agency_admin_sets_it_on_the_seats_page_and_nobody_else_can(self):
        sign_in(self.client, self.erin)
        url = reverse("accounts:user-certification", args=[self.alice.code])
        response = self.client.post(url, {"trained_on": "2026-01-10", "valid_until": "2027-01-10"})
        self.assertEqual(response.status_code, 302)
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.search_certified_until, date(2027, 1, 10))
        self.assertEqual(AuditEntry.objects.filter(action="certification_changed").count(), 1)
        page = self.client.get(reverse("accounts:seats")).content.decode()
        self.assertIn("Face-search certification (required)", page)
        # Bad input: a clear message, nothing changed.
        self.client.post(url, {"trained_on": "2026-02-01", "valid_until": ""}, follow=True)
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.search_certified_until, date(2027, 1, 10))
        response = self.client.post(url, {"trained_on": "2026-02-01", "valid_until": "2025-01-01"}, follow=True)
        self.assertContains(response, "cannot end before the training")
        # Another agency's admin: 404; an officer: 403.
        self.client.logout()
        sign_in(self.client, self.dave)
        self.assertEqual(self.client.post(url, {"trained_on": "", "valid_until": ""}).status_code, 404)
        self.client.logout()
        sign_in(self.client, self.alice)
        self.assertEqual(self.client.post(url, {"trained_on": "", "valid_until": ""}).status_code, 403)

    def test_the_command_and_search_photo_exit_1_with_the_reason(self):
        out = io.StringIO()
        with self.assertRaises(SystemExit) as exit_info:
            call_command(
                "search_photo",
                str(faces_dir() / "img2.jpg"),
                "--agency=north",
                "--case=N-001",
                "--user=alice",
                "--purpose=Robbery",
                f"--justification={JUSTIFICATION}",
                "--json",
                stdout=out,
            )
        self.assertEqual(exit_info.exception.code, 1)
        result = json.loads(out.getvalue())
        self.assertIn("no face-search certification", result["error"])
        self.assertIsNone(result["job"])
        out = io.StringIO()
        call_command(
            "set_certification", "alice", "--trained-on=2026-01-10", "--valid-until=2099-01-01", "--json", stdout=out
        )
        self.assertEqual(json.loads(out.getvalue())["valid_until"], "2099-01-01")
        with self.assertRaises(CommandError):
            call_command("set_certification", "alice", "--trained-on=2026-01-10")
        self.alice.refresh_from_db()
        self.assertEqual(_submit(self.case, self.alice).status, SearchJob.Status.QUEUED)

    def test_the_api_refuses_with_the_reason(self):
        token = tokens.api_token_create(user=self.alice, name="script").token
        photo = io.BytesIO(photo_bytes("img2.jpg"))
        photo.name = "probe.jpg"
        response = self.client.post(
            f"/api/v1/cases/{self.case.code}/searches/",
            {"photo": photo, "purpose": "Robbery", "justification": JUSTIFICATION},
            headers={"Authorization": f"Bearer {token}"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("certification", response.json()["detail"])
        policy = self.client.get("/api/v1/policy/", headers={"Authorization": f"Bearer {token}"}).json()
        self.assertEqual((policy["policy"]["certification_required"], policy["may_search"]), (True, False))
        self.assertEqual(SearchJob.objects.count(), 0)


class AuthorisationTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        agency_policy_set(agency=cls.north, actor=None, authorisation_required=True)

    def grant(self, **fields):
        fields = {
            "case": self.case,
            "user": self.bob,
            "authority": "District Court of North",
            "reference": "DC-2026-114",
            "decided_on": timezone.localdate(),
        } | fields
        return lawful_use.authorisation_grant(**fields)

    def test_the_first_search_opens_a_request_and_the_urgent_window(self):
        with time_machine.travel(START, tick=False):
            job = _submit(self.case, self.alice)
        request = CaseAuthorisation.objects.get()
        self.assertEqual(request.status, CaseAuthorisation.Status.REQUESTED)
        self.assertEqual(request.window_ends_at, START + timedelta(hours=48))
        self.assertEqual(job.authorisation, request)
        self.assertEqual(AuditEntry.objects.filter(action="authorisation_requested").count(), 1)
        started = AuditEntry.objects.get(action="search_started")
        self.assertEqual(started.data["authorisation_status"], "requested")
        # Inside the window another search runs under the same request; after it, none.
        with time_machine.travel(START + timedelta(hours=47, minutes=59), tick=False):
            self.assertEqual(_submit(self.case, self.alice, photo="img16.jpg").authorisation, request)
        with time_machine.travel(START + timedelta(hours=48), tick=False):
            with self.assertRaisesMessage(SearchRefused, "urgent-use window of case N-001 ended"):
                _submit(self.case, self.alice)
        self.assertEqual(CaseAuthorisation.objects.count(), 1)
        self.assertEqual(SearchJob.objects.count(), 2)
        # The answer, recorded late, lets the case search again.
        with time_machine.travel(START + timedelta(hours=60), tick=False):
            grant = self.grant()
            self.assertEqual(grant.pk, request.pk)
            self.assertEqual(_submit(self.case, self.alice).authorisation, grant)

    def test_a_window_of_the_agency_s_own_length(self):
        agency_policy_set(agency=self.north, actor=None, urgent_window_hours=6)
        with time_machine.travel(START, tick=False):
            _submit(self.case, self.alice)
        with time_machine.travel(START + timedelta(hours=6, seconds=1), tick=False):
            with self.assertRaisesMessage(SearchRefused, "urgent-use window"):
                _submit(self.case, self.alice)

    def test_an_expired_grant_and_an_offense_outside_its_scope_are_refused(self):
        with time_machine.travel(START, tick=False):
            robbery = OffenseCategory.objects.get(name="Robbery")
            self.grant(expires_at=START + timedelta(days=30), category_ids=[robbery.id])
            job = _submit(self.case, self.alice)
            self.assertEqual(job.authorisation.status, "granted")
            other = OffenseCategory.objects.exclude(pk=robbery.pk).filter(is_active=True).first()
            with self.assertRaisesMessage(SearchRefused, "covers searches for Robbery only"):
                _submit(self.case, self.alice, purpose=other.name)
        with time_machine.travel(START + timedelta(days=30), tick=False):
            with self.assertRaisesMessage(SearchRefused, "expired on"):
                _submit(self.case, self.alice)
            # A renewal is a new grant.
            self.grant(reference="DC-2026-114/2")
            self.assertEqual(_submit(self.case, self.alice).authorisation.reference, "DC-2026-114/2")

    def test_a_search_reads_only_the_galleries_its_authorisation_covers(self):
        covered = gallery_make(owner=self.north, name="Covered", people={"P01": [faces_dir() / "img1.jpg"]})
        gallery_make(owner=self.north, name="Not covered", people={"P01 again": [faces_dir() / "img4.jpg"]})
        self.grant(gallery_ids=[covered.id])
        job = job_make(
            case=self.case,
            uploaded_by=self.alice,
            data=photo_bytes("img2.jpg"),
            purpose="Robbery",
            justification=JUSTIFICATION,
        )
        self.assertEqual(job.status, SearchJob.Status.DONE, job.error)
        galleries = set(job.candidates.values_list("face_image__gallery__name", flat=True))
        self.assertEqual(galleries, {"Covered"})
        # Without a scope, both.
        case = case_make(created_by=self.alice, number="N-002")
        lawful_use.authorisation_grant(
            case=case, user=self.bob, authority="Court", reference="R-2", decided_on=timezone.localdate()
        )
        job = job_make(
            case=case,
            uploaded_by=self.alice,
            data=photo_bytes("img2.jpg"),
            purpose="Robbery",
            justification=JUSTIFICATION,
        )
        self.assertEqual(
            set(job.candidates.values_list("face_image__gallery__name", flat=True)), {"Covered", "Not covered"}
        )

    def test_only_a_supervisor_of_the_agency_records_the_answer_and_bad_fields_are_named(self):
        for user in (self.alice, self.erin, self.charlie):
            with self.assertRaises(lawful_use.UseRefused):
                self.grant(user=user)
        with self.assertRaises(lawful_use.AuthorisationError) as errors:
            self.grant(authority="", reference=" ", decided_on=timezone.localdate() + timedelta(days=1))
        self.assertEqual(set(errors.exception.errors), {"authority", "reference", "decided_on"})
        south_gallery = gallery_make(owner=self.south, name="South only")
        with self.assertRaises(lawful_use.AuthorisationError) as errors:
            self.grant(gallery_ids=[south_gallery.id])
        self.assertIn("galleries", errors.exception.errors)
        self.assertFalse(CaseAuthorisation.objects.exists())

    def test_a_refusal_stops_the_case_and_erases_its_search_data_leaving_the_audit_whole(self):
        gallery_make(owner=self.north, people={"P01": [faces_dir() / "img1.jpg"]})
        job = job_make(
            case=self.case,
            uploaded_by=self.alice,
            data=photo_bytes("img2.jpg"),
            purpose="Robbery",
            justification=JUSTIFICATION,
        )
        self.assertEqual(job.status, SearchJob.Status.DONE)
        probe_file = job.probe.image.name
        crops = [f.crop.name for f in ProbeFace.objects.filter(probe=job.probe)]
        self.assertTrue(_media_exists(probe_file) and crops and all(_media_exists(c) for c in crops))
        report = case_report_request(case=self.case, user=self.bob)
        CaseReport.objects.filter(pk=report.pk).update(file="reports/stand-in.pdf")
        (Path(settings.MEDIA_ROOT) / "reports").mkdir(parents=True, exist_ok=True)
        (Path(settings.MEDIA_ROOT) / "reports/stand-in.pdf").write_bytes(b"%PDF-1.4 stand-in")
        entries_before = AuditEntry.objects.count()

        with self.captureOnCommitCallbacks(execute=True):
            erased = lawful_use.authorisation_refuse(
                case=self.case,
                user=self.bob,
                authority="District Court of North",
                reference="DC-2026-120",
                decided_on=timezone.localdate(),
                reason="Not proportionate for the offense under investigation.",
            )
        self.assertEqual((erased["searches"], erased["probes"], erased["reports"]), (1, 1, 1))
        self.assertGreaterEqual(erased["candidates"], 1)
        self.assertFalse(SearchJob.objects.filter(probe__case=self.case).exists())
        self.assertFalse(Probe.objects.filter(case=self.case).exists())
        self.assertFalse(CaseReport.objects.filter(case=self.case).exists())
        for name in [probe_file, *crops, "reports/stand-in.pdf"]:
            self.assertFalse(_media_exists(name), name)
        # The audit keeps what happened, and why; its chain is whole.
        self.assertEqual(AuditEntry.objects.filter(case=self.case, action="search_started").count(), 1)
        erasure = AuditEntry.objects.get(action="case_search_data_erased")
        self.assertEqual(erasure.data["jobs"], [str(job.code)])
        self.assertIn("DC-2026-120", erasure.data["reason"])
        self.assertEqual(AuditEntry.objects.count(), entries_before + 2)
        out = io.StringIO()
        call_command("verify_audit", stdout=out)
        self.assertIn("The audit log is whole", out.getvalue())
        # No further search, and no grant after it.
        with self.assertRaisesMessage(SearchRefused, "was refused"):
            _submit(self.case, self.alice)
        with self.assertRaisesMessage(lawful_use.UseRefused, "was refused"):
            self.grant()

    def test_the_case_page_shows_the_state_and_takes_the_supervisor_s_answer(self):
        with time_machine.travel(START, tick=False):
            _submit(self.case, self.alice)
        with time_machine.travel(START + timedelta(hours=1), tick=False):
            sign_in(self.client, self.alice)
            page = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
        self.assertIn("data-urgent-window", page)
        self.assertNotIn("data-grant-form", page)  # officers do not record answers
        with time_machine.travel(START + timedelta(hours=49), tick=False):
            self.client.logout()
            sign_in(self.client, self.alice)
            page = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
            self.assertIn("data-search-blocked", page)
            response = self.client.post(
                reverse("search:probe-upload", args=[self.case.code]),
                {"photos": [_upload()], "purpose": "Robbery", "justification": JUSTIFICATION},
            )
            self.assertEqual(response.status_code, 400)
            self.assertContains(response, "urgent-use window of case N-001 ended", status_code=400)
        self.client.logout()
        sign_in(self.client, self.bob)
        url = reverse("search:authorisation-grant", args=[self.case.code])
        # Bad input: the fields named, nothing recorded.
        response = self.client.post(url, {"authority": "", "reference": "R", "decided_on": "not a date"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "This field is required", status_code=400)
        self.assertEqual(CaseAuthorisation.objects.get().status, "requested")
        response = self.client.post(
            url,
            {
                "authority": "District Court <North>",
                "reference": "DC-9",
                "decided_on": timezone.localdate().isoformat(),
                "valid_until": (timezone.localdate() + timedelta(days=90)).isoformat(),
            },
            follow=True,
        )
        self.assertContains(response, "Recorded: Authorised by District Court &lt;North&gt;, DC-9")
        self.assertIn("data-authorised", response.content.decode())
        grant = CaseAuthorisation.objects.get()
        self.assertEqual(grant.status, "granted")
        self.assertEqual(timezone.localtime(grant.expires_at).date(), timezone.localdate() + timedelta(days=91))
        # Another agency's case: 404.
        self.client.logout()
        sign_in(self.client, user_make("sam", agency=self.south, role=Role.SUPERVISOR))
        self.assertEqual(self.client.post(url, {}).status_code, 404)

    def test_the_refusal_form_needs_the_confirmation(self):
        sign_in(self.client, self.bob)
        url = reverse("search:authorisation-refuse", args=[self.case.code])
        fields = {
            "authority": "Court",
            "reference": "R-1",
            "decided_on": timezone.localdate().isoformat(),
            "refusal_reason": "Not proportionate to the offense.",
        }
        response = self.client.post(url, fields)
        self.assertContains(response, "Tick the box to confirm", status_code=400)
        self.assertFalse(CaseAuthorisation.objects.exists())
        response = self.client.post(url, fields | {"confirm": "on"}, follow=True)
        self.assertContains(response, "Refusal recorded")
        self.assertEqual(CaseAuthorisation.objects.get().status, "refused")

    def test_the_api_lists_grants_and_refuses_like_the_pages(self):
        officer = tokens.api_token_create(user=self.alice, name="script").token
        supervisor = tokens.api_token_create(user=self.bob, name="script").token
        base = f"/api/v1/cases/{self.case.code}/authorisations/"
        body = self.client.get(base, headers={"Authorization": f"Bearer {officer}"}).json()
        self.assertEqual((body["required"], body["may_search"], body["authorisations"]), (True, True, []))
        answer = {"authority": "Court", "reference": "R-7", "decided_on": timezone.localdate().isoformat()}
        response = self.client.post(
            base + "grant/", answer, content_type="application/json", headers={"Authorization": f"Bearer {officer}"}
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("supervisor", response.json()["detail"])
        response = self.client.post(
            base + "grant/",
            answer | {"offense_categories": ["Nothing like it"]},
            content_type="application/json",
            headers={"Authorization": f"Bearer {supervisor}"},
        )
        self.assertEqual(response.status_code, 400)
        response = self.client.post(
            base + "grant/",
            answer | {"offense_categories": ["Robbery"]},
            content_type="application/json",
            headers={"Authorization": f"Bearer {supervisor}"},
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["authorisations"][0]["offense_categories"], ["Robbery"])
        other = tokens.api_token_create(user=self.charlie, name="script").token
        self.assertEqual(self.client.get(base, headers={"Authorization": f"Bearer {other}"}).status_code, 404)


class PolicyCommandAndAdminTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.staff = user_make("pat", role=Role.PLATFORM_STAFF)

    def test_set_policy_changes_only_what_it_is_given_and_is_audited(self):
        out = io.StringIO()
        call_command("set_policy", "--agency=north", "--authorisation-required=yes", "--json", stdout=out)
        values = json.loads(out.getvalue())
        self.assertEqual((values["authorisation_required"], values["urgent_window_hours"]), (True, 48))
        call_command("set_policy", "--agency=north", "--urgent-window-hours=24", stdout=io.StringIO())
        policy = AgencyPolicy.objects.get(agency=self.north)
        self.assertEqual((policy.authorisation_required, policy.urgent_window_hours), (True, 24))
        self.assertEqual(AuditEntry.objects.filter(action="policy_changed", agency=self.north).count(), 2)
        for bad in ("--watchlist-max-days=400", "--urgent-window-hours=0"):
            with self.assertRaises(CommandError):
                call_command("set_policy", "--agency=north", bad, stdout=io.StringIO())
        with self.assertRaises(CommandError):
            call_command("set_policy", "--agency=nowhere", stdout=io.StringIO())

    def test_platform_staff_set_it_in_the_admin_and_agency_users_cannot(self):
        sign_in(self.client, self.staff)
        response = self.client.post(
            reverse("admin:accounts_agencypolicy_add"),
            {
                "agency": self.north.pk,
                "authorisation_required": "on",
                "urgent_window_hours": 48,
                "certification_required": "on",
                "watchlist_max_entries": 50,
                "watchlist_max_days": 365,
            },
        )
        self.assertEqual(response.status_code, 302, response.content[:2000])
        policy = AgencyPolicy.objects.get(agency=self.north)
        self.assertTrue(policy.certification_required)
        self.assertEqual(AuditEntry.objects.get(action="policy_changed").actor, self.staff)
        response = self.client.post(
            reverse("admin:accounts_agencypolicy_change", args=[policy.pk]),
            {"urgent_window_hours": 0, "watchlist_max_entries": 50, "watchlist_max_days": 366},
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "between 1 hour and 30 days")
        self.client.logout()
        sign_in(self.client, self.erin)
        self.assertNotEqual(self.client.get(reverse("admin:accounts_agencypolicy_changelist")).status_code, 200)
        # Shown to the agency's users.
        page = self.client.get(reverse("search:lawful-use")).content.decode()
        self.assertIn("only users with a current face-search", page)


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("probe.jpg", photo_bytes("img2.jpg"), content_type="image/jpeg")
