"""The lineup gate: a confirmed lead is cleared for identification procedures only on independent evidence (what,
by whom, when; never the face search) and by a supervisor; every output says plainly when it is not. Real
searches of real photos, a lead confirmed by two people through search.leads."""

import io
from datetime import date, timedelta

import time_machine
from django.db import IntegrityError, transaction
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from accounts import tokens
from accounts.models import Role
from portal.models import AuditEntry
from portal.reports.render import case_report_render
from portal.services import case_report_request
from search import lineup
from search.leads import candidate_mark, lead_decide, lead_verify
from search.models import IndependentEvidence, LeadReview
from tests.base import AgencyFixtureMixin, faces_dir, photo_bytes, sign_in
from tests.factories import comparison_entry, gallery_make, job_make, user_make

EVIDENCE = {
    "kind": "witness",
    "description": "The shop keeper named the suspect in a signed statement before any photo was shown.",
    "obtained_by": "DC Morgan, North CID",
    "obtained_on": "2026-11-20",
}
NOT_CLEARED = "Not cleared for identification procedures: no lineup or arrest request on this lead until independent evidence is recorded and a supervisor clears it."  # noqa: E501


class LineupTestCase(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.sue = user_make("sue", agency=cls.north, role=Role.SUPERVISOR)
        cls.sue.first_name, cls.sue.last_name = "Sue", "Parker"
        cls.sue.save()
        gallery_make(owner=cls.north, people={"P01": [faces_dir() / "img1.jpg"], "P02": [faces_dir() / "img16.jpg"]})
        cls.job = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        cls.candidate = cls.job.candidates.get(rank=1)
        cls.other = cls.job.candidates.exclude(pk=cls.candidate.pk).first()
        candidate_mark(
            user=cls.alice,
            candidate=cls.candidate,
            decision=LeadReview.Status.POSSIBLE_LEAD,
            comparison_entry=comparison_entry("supports", notes="same scar"),
        )
        lead_verify(user=cls.bob, candidate=cls.candidate, comparison_entry=comparison_entry("supports"))
        cls.review = lead_decide(user=cls.bob, candidate=cls.candidate, confirm=True, note="agree")
        cls.urls = {
            name: reverse(f"search:{name}", args=[cls.job.code, 1, cls.candidate.rank])
            for name in ("candidate-compare", "lead-evidence", "lead-clear")
        }

    def record(self, user=None, **changes):
        return lineup.evidence_record(review=self.review, user=user or self.alice, **(EVIDENCE | changes))


class EvidenceAndClearanceTests(LineupTestCase):
    def test_evidence_then_a_supervisor_clears_and_both_are_audited(self):
        self.assertEqual(self.candidate.rank, 1)
        self.assertEqual(self.candidate.profile.display_name, "P01")
        evidence = self.record()
        self.assertEqual((evidence.kind, evidence.obtained_on), ("witness", date(2026, 11, 20)))
        entry = AuditEntry.objects.get(action=AuditEntry.Action.EVIDENCE_RECORDED)
        self.assertEqual(
            (entry.actor, entry.case, entry.data["kind"], entry.data["obtained_by"], entry.data["obtained_on"]),
            (self.alice, self.case, "witness", "DC Morgan, North CID", "2026-11-20"),
        )
        self.assertFalse(lineup.clearance_of(self.review).cleared)  # evidence alone does not clear

        review = lineup.lead_clear(review=self.review, user=self.sue, note="statement checked")
        self.assertEqual((review.cleared_by, review.clearance_note), (self.sue, "statement checked"))
        entry = AuditEntry.objects.get(action=AuditEntry.Action.LEAD_CLEARED)
        self.assertEqual(
            (entry.actor, entry.data["evidence"], entry.data["kinds"]), (self.sue, [str(evidence.code)], ["witness"])
        )
        clearance = lineup.clearance_of(review)
        self.assertTrue(clearance.cleared)
        self.assertEqual(
            clearance.sentence,
            f"Cleared for identification procedures on {timezone.localtime(review.cleared_at):%d %b %Y} by Sue Parker "
            f"(sue), on independent evidence: Witness statement — {EVIDENCE['description']} (obtained by DC Morgan, "
            "North CID on 20 Nov 2026).",
        )

    def test_a_lead_without_evidence_is_not_cleared_and_cannot_be(self):
        self.assertEqual(lineup.clearance_of(self.review).sentence, NOT_CLEARED)
        with self.assertRaisesMessage(lineup.ClearanceRefused, "Record independent evidence first"):
            lineup.lead_clear(review=self.review, user=self.sue, note="")
        self.review.refresh_from_db()
        self.assertIsNone(self.review.cleared_at)
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.LEAD_CLEARED).exists())

    def test_only_a_supervisor_clears_and_only_once(self):
        self.record()
        with self.assertRaisesMessage(lineup.ClearanceRefused, "Only a supervisor clears"):
            lineup.lead_clear(review=self.review, user=self.alice, note="")
        with self.assertRaisesMessage(lineup.ClearanceRefused, "Only a supervisor clears"):
            lineup.lead_clear(review=self.review, user=self.erin, note="")  # the agency admin neither
        lineup.lead_clear(review=self.review, user=self.bob, note="")
        with self.assertRaisesMessage(lineup.ClearanceRefused, "already cleared by bob"):
            lineup.lead_clear(review=self.review, user=self.sue, note="again")
        self.assertEqual(AuditEntry.objects.filter(action=AuditEntry.Action.LEAD_CLEARED).count(), 1)

    def test_each_bad_field_is_refused_and_nothing_is_stored(self):
        tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
        cases = {
            "kind": [{"kind": "face_search"}, {"kind": "hunch"}, {"kind": ""}],
            "description": [{"description": "seen him"}, {"description": " " * 30}],
            "obtained_by": [{"obtained_by": ""}, {"obtained_by": "   "}],
            "obtained_on": [{"obtained_on": tomorrow}, {"obtained_on": "2026-02-30"}, {"obtained_on": "last week"}],
        }
        for field, changes in cases.items():
            for change in changes:
                with self.subTest(change=change), self.assertRaises(lineup.EvidenceErrors) as refused:
                    self.record(**change)
                self.assertEqual(list(refused.exception.errors), [field])
        with self.assertRaisesMessage(lineup.EvidenceErrors, "The face search is not independent evidence"):
            self.record(kind="face_search")
        self.assertEqual(IndependentEvidence.objects.count(), 0)
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.EVIDENCE_RECORDED).exists())

    def test_today_is_accepted_and_the_future_follows_the_clock(self):
        with time_machine.travel(timezone.make_aware(timezone.datetime(2026, 11, 21, 12)), tick=False):
            self.assertEqual(self.record(obtained_on="2026-11-21").obtained_on, date(2026, 11, 21))
            with self.assertRaisesMessage(lineup.EvidenceErrors, "cannot be in the future"):
                self.record(obtained_on=date(2026, 11, 22))

    def test_evidence_only_on_a_confirmed_lead_by_officers_and_supervisors_of_the_agency(self):
        proposed = candidate_mark(
            user=self.alice,
            candidate=self.other,
            decision=LeadReview.Status.POSSIBLE_LEAD,
            comparison_entry=comparison_entry("supports"),
        )
        with self.assertRaisesMessage(lineup.ClearanceRefused, "Only a confirmed lead"):
            lineup.evidence_record(review=proposed, user=self.alice, **EVIDENCE)
        with self.assertRaisesMessage(lineup.ClearanceRefused, "officers and supervisors"):
            self.record(user=self.erin)
        with self.assertRaisesMessage(lineup.ClearanceRefused, "searching agency"):
            self.record(user=self.charlie)
        self.assertEqual(IndependentEvidence.objects.count(), 0)
        self.record(user=self.bob)  # a supervisor may
        self.assertEqual(IndependentEvidence.objects.count(), 1)

    def test_the_database_refuses_a_clearance_of_a_lead_that_is_not_confirmed(self):
        with self.assertRaises(IntegrityError), transaction.atomic():
            LeadReview.objects.filter(pk=self.review.pk).update(
                status=LeadReview.Status.REJECTED, cleared_at=timezone.now()
            )


class LineupPageTests(LineupTestCase):
    def test_the_pages_say_plainly_that_a_confirmed_lead_is_not_cleared(self):
        sign_in(self.client, self.alice)
        compare = self.client.get(self.urls["candidate-compare"])
        self.assertContains(compare, NOT_CLEARED)
        self.assertContains(compare, self.urls["lead-evidence"])
        self.assertNotContains(compare, self.urls["lead-clear"])  # an officer does not clear
        case_page = self.client.get(reverse("portal:case-detail", args=[self.case.code]))
        self.assertContains(case_page, NOT_CLEARED)
        self.assertContains(case_page, 'data-cleared="no"')

    def test_the_form_needs_the_statement_and_refuses_the_face_search(self):
        sign_in(self.client, self.alice)
        self.assertContains(self.client.get(self.urls["lead-evidence"]), lineup.INDEPENDENCE_STATEMENT)
        unticked = self.client.post(self.urls["lead-evidence"], EVIDENCE)
        self.assertContains(unticked, "only such evidence may be recorded", status_code=400)
        face_search = self.client.post(
            self.urls["lead-evidence"], EVIDENCE | {"kind": "face_search", "independent": "on"}
        )
        self.assertContains(face_search, "The face search is not independent evidence", status_code=400)
        short = self.client.post(
            self.urls["lead-evidence"], EVIDENCE | {"description": "<b>x</b>", "independent": "on"}
        )
        self.assertContains(short, "at least 20 characters", status_code=400)
        self.assertContains(short, "&lt;b&gt;x&lt;/b&gt;", status_code=400)  # what was typed, escaped
        self.assertEqual(IndependentEvidence.objects.count(), 0)
        recorded = self.client.post(self.urls["lead-evidence"], EVIDENCE | {"independent": "on"})
        self.assertRedirects(recorded, self.urls["candidate-compare"], fetch_redirect_response=False)
        self.assertEqual(IndependentEvidence.objects.get().recorded_by, self.alice)

    def test_an_officer_is_refused_the_clearance_and_a_supervisor_clears(self):
        self.record()
        sign_in(self.client, self.alice)
        refused = self.client.post(self.urls["lead-clear"], {"note": "go"}, follow=True)
        self.assertContains(refused, "Only a supervisor clears a lead")
        self.review.refresh_from_db()
        self.assertIsNone(self.review.cleared_at)
        sign_in(self.client, self.sue)
        self.assertContains(self.client.get(self.urls["candidate-compare"]), "Clear for identification procedures")
        cleared = self.client.post(self.urls["lead-clear"], {"note": "statement checked"}, follow=True)
        self.assertContains(cleared, "Cleared for identification procedures on")
        self.assertContains(cleared, "by Sue Parker (sue), on independent evidence: Witness statement")
        case_page = self.client.get(reverse("portal:case-detail", args=[self.case.code]))
        self.assertContains(case_page, 'data-cleared="yes"')
        self.assertNotContains(case_page, NOT_CLEARED)
        again = self.client.post(self.urls["lead-clear"], {"note": "again"}, follow=True)
        self.assertContains(again, "already cleared by sue")

    def test_a_candidate_that_is_not_a_lead_has_no_evidence_form(self):
        sign_in(self.client, self.alice)
        url = reverse("search:lead-evidence", args=[self.job.code, 1, self.other.rank])
        self.assertContains(self.client.get(url), "This candidate is not a confirmed lead")
        response = self.client.post(url, EVIDENCE | {"independent": "on"})
        self.assertContains(response, "not a confirmed lead", status_code=400)
        self.assertEqual(IndependentEvidence.objects.count(), 0)

    def test_another_agency_gets_404(self):
        sign_in(self.client, self.dave)
        for name in ("lead-evidence", "lead-clear"):
            self.assertEqual(self.client.post(self.urls[name], EVIDENCE | {"independent": "on"}).status_code, 404)
        self.assertEqual(self.client.get(self.urls["lead-evidence"]).status_code, 404)
        self.assertEqual(IndependentEvidence.objects.count(), 0)


class LineupApiTests(LineupTestCase):
    def api(self, method, name, user, **kwargs):
        token = tokens.api_token_create(user=user, name=f"{user.username} lineup").token
        url = reverse(f"api:{name}", args=[self.job.code, 1, self.candidate.rank])
        return getattr(self.client, method)(url, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    def test_the_candidate_says_whether_it_is_cleared(self):
        body = self.api("get", "candidate-detail", self.alice).json()
        self.assertEqual(
            (body["cleared_for_identification"], body["identification_procedures"], body["evidence"]),
            (False, NOT_CLEARED, []),
        )

    def test_evidence_and_clearance_through_the_api(self):
        refused = self.api("post", "lead-evidence", self.alice, data=EVIDENCE | {"obtained_independently": False})
        self.assertEqual(refused.status_code, 400)
        self.assertEqual(refused["Content-Type"], "application/problem+json")
        self.assertIn("obtained_independently", refused.json()["errors"])
        face = self.api(
            "post", "lead-evidence", self.alice, data=EVIDENCE | {"kind": "face_search", "obtained_independently": True}
        )
        self.assertEqual(face.status_code, 400)
        self.assertIn("The face search is not independent evidence", face.json()["errors"]["kind"][0])
        early = self.api("post", "lead-clear", self.sue, data={"note": "go"}, content_type="application/json")
        self.assertEqual(early.status_code, 400)
        self.assertIn("Record independent evidence first", early.json()["detail"])
        self.assertEqual(IndependentEvidence.objects.count(), 0)

        created = self.api("post", "lead-evidence", self.alice, data=EVIDENCE | {"obtained_independently": True})
        self.assertEqual(created.status_code, 201, created.content)
        self.assertEqual(created.json()["evidence"][0]["kind"], "witness")
        self.assertFalse(created.json()["cleared_for_identification"])
        officer = self.api("post", "lead-clear", self.alice, data={}, content_type="application/json")
        self.assertEqual(officer.status_code, 400)
        cleared = self.api("post", "lead-clear", self.sue, data={"note": "checked"}, content_type="application/json")
        self.assertEqual(cleared.status_code, 200, cleared.content)
        self.assertTrue(cleared.json()["cleared_for_identification"])
        body = self.api("get", "candidate-detail", self.alice).json()
        self.assertTrue(body["cleared_for_identification"])
        self.assertTrue(body["identification_procedures"].startswith("Cleared for identification procedures on"))
        self.assertEqual(body["evidence"][0]["obtained_by"], "DC Morgan, North CID")

    def test_another_agency_gets_404(self):
        response = self.api("post", "lead-evidence", self.charlie, data=EVIDENCE | {"obtained_independently": True})
        self.assertEqual(response.status_code, 404)


class LineupReportTests(LineupTestCase):
    def report_text(self) -> str:
        report = case_report_request(case=self.case, user=self.alice)
        case_report_render(report_id=report.id)
        report.refresh_from_db()
        with report.file.open("rb") as stored:
            pages = PdfReader(io.BytesIO(stored.read())).pages
        return " ".join(" ".join((page.extract_text() or "").split()) for page in pages)

    def test_the_case_report_says_for_each_confirmed_lead_whether_it_is_cleared(self):
        self.assertIn("P01 (search 1, face 1): Not cleared for identification procedures", self.report_text())
        self.record()
        lineup.lead_clear(review=self.review, user=self.sue, note="")
        text = self.report_text()
        self.assertIn("P01 (search 1, face 1): Cleared for identification procedures on", text)
        self.assertIn("by Sue Parker (sue), on independent evidence: Witness statement", text)
        self.assertNotIn("Not cleared for identification procedures", text)


class ClearanceWordsTests(TestCase):
    def test_no_review_is_not_cleared(self):
        self.assertEqual(lineup.clearance_of(None).sentence, NOT_CLEARED)
        self.assertFalse(lineup.clearance_of(None).cleared)
