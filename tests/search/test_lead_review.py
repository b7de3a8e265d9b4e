"""Two-person verification: a candidate becomes a confirmed lead only when a second person, a supervisor,
confirms it after recording their own comparison; every decision is audited. (The comparison records' own
rules, blind verification among them, are in test_comparison_records.py.)"""

from django.test import TestCase
from django.urls import reverse

from accounts.models import Role
from accounts.services import user_create
from portal.models import AuditEntry
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.leads import ReviewRefused, candidate_mark, lead_decide, lead_verify
from search.models import LeadReview
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, PASSWORD, AgencyFixtureMixin, faces_dir, photo_bytes, sign_in
from tests.factories import comparison_entry


class LeadReviewTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.sue = user_create(username="sue", password=PASSWORD, role=Role.SUPERVISOR, agency=cls.north)
        gallery, _ = gallery_get_or_create(
            owner=cls.north, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
        )
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[
                EnrolmentItem(path=str(faces_dir() / name), display_name=who)
                for name, who in (("img1.jpg", "P01"), ("img16.jpg", "P02"))
            ],
        )
        job = probe_submit(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        pipeline.search_job_run(job_id=job.id)
        cls.job = job
        cls.candidate = job.candidates.get(rank=1)

    def mark(self, user, decision="possible_lead", note=""):
        conclusion = "supports" if decision == "possible_lead" else "does_not_support"
        return candidate_mark(
            user=user,
            candidate=self.candidate,
            decision=decision,
            comparison_entry=comparison_entry(conclusion, notes=note),
        )

    def verify(self, user, conclusion="supports"):
        return lead_verify(user=user, candidate=self.candidate, comparison_entry=comparison_entry(conclusion))

    def test_an_officer_proposes_and_a_different_supervisor_confirms(self):
        self.mark(self.alice, note="same scar")
        self.verify(self.bob)
        review = lead_decide(user=self.bob, candidate=self.candidate, confirm=True, note="agree")
        self.assertEqual(
            (review.status, review.proposed_by, review.reviewed_by), (LeadReview.Status.CONFIRMED, self.alice, self.bob)
        )
        actions = list(AuditEntry.objects.filter(target_type="search.candidate").values_list("action", flat=True))
        self.assertEqual(
            sorted(actions), ["comparison_recorded", "comparison_recorded", "lead_confirmed", "lead_proposed"]
        )

    def test_nobody_confirms_their_own_proposal(self):
        self.mark(self.bob)
        with self.assertRaisesMessage(ReviewRefused, "Nobody confirms their own proposal"):
            lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        with self.assertRaisesMessage(ReviewRefused, "Nobody confirms their own proposal"):
            self.verify(self.bob)  # nor verifies it
        self.verify(self.sue)
        lead_decide(user=self.sue, candidate=self.candidate, confirm=True)  # a second supervisor may

    def test_an_officer_cannot_confirm(self):
        self.mark(self.bob)
        with self.assertRaisesMessage(ReviewRefused, "Only a supervisor confirms or rejects a lead."):
            lead_decide(user=self.alice, candidate=self.candidate, confirm=True)
        with self.assertRaisesMessage(ReviewRefused, "Only a supervisor confirms or rejects a lead."):
            self.verify(self.alice)
        self.assertEqual(LeadReview.objects.get().status, LeadReview.Status.POSSIBLE_LEAD)

    def test_a_rejection_needs_a_reason(self):
        self.mark(self.alice)
        self.verify(self.bob, "does_not_support")
        with self.assertRaisesMessage(ReviewRefused, "Give the reason"):
            lead_decide(user=self.bob, candidate=self.candidate, confirm=False)
        review = lead_decide(user=self.bob, candidate=self.candidate, confirm=False, note="ears differ")
        self.assertEqual(review.status, LeadReview.Status.REJECTED)

    def test_an_unproposed_or_excluded_candidate_cannot_be_confirmed(self):
        with self.assertRaisesMessage(ReviewRefused, "Only a candidate proposed as a possible lead"):
            lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        self.mark(self.alice, "excluded")
        with self.assertRaisesMessage(ReviewRefused, "Only a candidate proposed as a possible lead"):
            lead_decide(user=self.bob, candidate=self.candidate, confirm=True)

    def test_another_agency_cannot_review(self):
        with self.assertRaisesMessage(ReviewRefused, "searching agency"):
            self.mark(self.charlie)

    def test_the_case_page_lists_confirmed_leads_with_both_names_under_the_statement(self):
        self.mark(self.alice)
        self.verify(self.bob)
        lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        sign_in(self.client, self.alice)
        response = self.client.get(reverse("portal:case-detail", args=[self.case.code]))
        self.assertContains(response, "A lead is not an identification")
        self.assertContains(response, "proposed by alice")
        self.assertContains(response, "confirmed by bob")

    def test_the_comparison_page_offers_the_right_decision_to_each_person(self):
        url = reverse("search:candidate-compare", args=[self.job.code, 1, 1])
        sign_in(self.client, self.alice)
        self.assertContains(self.client.get(url), "Propose as a possible lead")
        record = {f"feature_{key}": "similar" for key in ("face_shape", "eyes", "nose", "mouth", "ears", "marks")}
        self.client.post(
            reverse("search:candidate-mark", args=[self.job.code, 1, 1]),
            {**record, "conclusion": "supports", "notes": "same scar", "decision": "possible_lead"},
        )
        self.assertNotContains(self.client.get(url), "Confirm the lead")  # not for the proposer
        sign_in(self.client, self.bob)
        page = self.client.get(url)
        self.assertNotContains(page, "Confirm the lead")  # not before their own record
        self.assertContains(page, "Save my comparison")
        self.client.post(
            reverse("search:lead-decide", args=[self.job.code, 1, 1]),
            {**record, "conclusion": "strongly_supports", "decision": "record"},
        )
        self.assertContains(self.client.get(url), "Confirm the lead")
        self.client.post(reverse("search:lead-decide", args=[self.job.code, 1, 1]), {"decision": "confirm"})
        self.assertContains(self.client.get(url), "Confirmed by bob")
        self.assertTrue(AuditEntry.objects.filter(action="comparison_viewed", actor=self.bob).exists())

    def test_a_refused_decision_shows_its_reason(self):
        sign_in(self.client, self.bob)
        response = self.client.post(
            reverse("search:lead-decide", args=[self.job.code, 1, 1]), {"decision": "confirm"}, follow=True
        )
        self.assertContains(response, "Only a candidate proposed as a possible lead")
