"""The review queue: supervisors see their agency's proposals waiting for a decision, with a count in the
header, blind (who proposed and when, not the proposal's note or conclusion, until they have recorded their
own); officers see what became of their own proposals."""

from django.test import TestCase
from django.urls import reverse

from accounts.models import Role
from search.context_processors import review_queue
from search.leads import candidate_mark, lead_decide, lead_verify
from search.models import LeadReview
from tests.base import AgencyFixtureMixin, photo_bytes, shared_photo_path, sign_in
from tests.factories import case_make, comparison_entry, gallery_make, job_make, user_make

QUEUE = reverse("search:review-queue")
MINE = reverse("search:review-mine")


class ReviewQueueTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        gallery_make(
            owner=cls.north,
            people={"P01": [shared_photo_path("img1.jpg")], "P02": [shared_photo_path("img26.jpg")]},
        )
        cls.waiting_job = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        cls.decided_job = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img4.jpg"))
        cls.excluded_job = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img5.jpg"))
        cls.sam = user_make("sam", agency=cls.south, role=Role.SUPERVISOR)
        cls.sue = user_make("sue", agency=cls.north, role=Role.SUPERVISOR)
        gallery_make(owner=cls.south, name="South bookings", people={"P03": [shared_photo_path("img47.jpg")]})
        south_case = case_make(created_by=cls.charlie, number="S-001")
        cls.south_job = job_make(case=south_case, uploaded_by=cls.charlie, data=photo_bytes("img48.jpg"))

    def _candidate(self, job, rank=1):
        return job.candidates.get(probe_face__index=1, rank=rank)

    def _propose(self, user, candidate, note=""):
        return candidate_mark(
            user=user, candidate=candidate, decision="possible_lead", comparison_entry=comparison_entry(notes=note)
        )

    def _verify(self, user, candidate, conclusion="supports"):
        return lead_verify(user=user, candidate=candidate, comparison_entry=comparison_entry(conclusion))

    def _propose_all(self):
        """Two waiting proposals of North (the older one is rank 2), one confirmed, one rejected, one excluded
        candidate, and one waiting proposal of South."""
        older = self._propose(self.alice, self._candidate(self.waiting_job, rank=2), note="same ears")
        newer = self._propose(self.alice, self._candidate(self.waiting_job, rank=1))
        for rank, confirm in ((1, True), (2, False)):
            candidate = self._candidate(self.decided_job, rank=rank)
            self._propose(self.alice, candidate)
            self._verify(self.bob, candidate, "supports" if confirm else "does_not_support")
            lead_decide(user=self.bob, candidate=candidate, confirm=confirm, note="" if confirm else "ears differ")
        candidate_mark(
            user=self.alice,
            candidate=self._candidate(self.excluded_job),
            decision="excluded",
            comparison_entry=comparison_entry("excluded", value="different"),
        )
        self._propose(self.charlie, self._candidate(self.south_job))
        return older, newer

    def test_a_supervisor_sees_exactly_the_waiting_proposals_of_their_agency_oldest_first(self):
        older, newer = self._propose_all()
        sign_in(self.client, self.bob)
        response = self.client.get(QUEUE)
        self.assertEqual(response.status_code, 200)
        self.assertEqual([row.review for row in response.context["rows"]], [older, newer])
        # Blind: who proposed and when, not the proposal's note, and a way to verify rather than a decision.
        self.assertContains(response, "proposed by alice", count=2)
        self.assertNotContains(response, "same ears")
        self.assertContains(response, "Verify (blind)", count=2)
        self.assertNotContains(response, 'value="confirm"')
        self.assertContains(response, reverse("search:probe-face-crop", args=[self.waiting_job.code, 1]))
        self.assertContains(response, reverse("search:face-crop", args=[older.candidate.face_image.code]))
        self.assertContains(response, reverse("search:candidate-compare", args=[self.waiting_job.code, 1, 2]))
        self.assertContains(response, reverse("portal:case-detail", args=[self.case.code]))
        self.assertContains(response, older.candidate.profile.display_name)
        self.assertNotContains(response, str(self.south_job.code))
        self.assertNotContains(response, str(self.decided_job.code))

    def test_a_supervisor_who_recorded_sees_the_note_and_both_conclusions_and_may_decide_in_the_row(self):
        older, newer = self._propose_all()
        self._verify(self.bob, older.candidate, "strongly_supports")
        sign_in(self.client, self.bob)
        response = self.client.get(QUEUE)
        self.assertContains(response, "same ears")
        self.assertContains(response, "alice, supports a lead · bob, strongly supports a lead")
        self.assertContains(response, "Verify (blind)", count=1)  # the newer one still waits for bob's record
        self.assertContains(response, 'value="confirm"', count=1)
        sign_in(self.client, self.sue)
        self.assertNotContains(self.client.get(QUEUE), "same ears")  # bob verifies it; sue stays blind

    def test_the_other_agency_sees_only_its_own_proposal(self):
        self._propose_all()
        sign_in(self.client, self.sam)
        rows = self.client.get(QUEUE).context["rows"]
        self.assertEqual([row.candidate.job for row in rows], [self.south_job])

    def test_the_header_counts_the_waiting_proposals_of_the_supervisors_agency(self):
        self._propose_all()
        sign_in(self.client, self.bob)
        self.assertContains(self.client.get(reverse("portal:dashboard")), "Reviews (2)")
        sign_in(self.client, self.sam)
        self.assertContains(self.client.get(reverse("portal:dashboard")), "Reviews (1)")

    def test_the_header_count_is_one_query_and_only_for_supervisors(self):
        self._propose_all()
        request = self.client.get(reverse("portal:dashboard")).wsgi_request  # signed out
        self.assertEqual(review_queue(request), {})
        sign_in(self.client, self.alice)
        page = self.client.get(reverse("portal:dashboard"))
        self.assertNotContains(page, "Reviews (")
        self.assertEqual(review_queue(page.wsgi_request), {})
        sign_in(self.client, self.bob)
        context = review_queue(self.client.get(reverse("portal:dashboard")).wsgi_request)
        with self.assertNumQueries(1):
            self.assertEqual(str(context["reviews_waiting"]), "2")

    def test_an_officer_cannot_open_the_supervisor_queue(self):
        sign_in(self.client, self.alice)
        self.assertEqual(self.client.get(QUEUE).status_code, 403)

    def test_a_signed_out_visitor_is_sent_to_sign_in(self):
        response = self.client.get(QUEUE)
        self.assertEqual(response.status_code, 302)
        self.assertIn(reverse("accounts:login"), response["Location"])

    def test_an_officer_sees_the_state_of_their_own_proposals(self):
        self._propose_all()
        sign_in(self.client, self.alice)
        response = self.client.get(MINE)
        statuses = sorted(row.review.status for row in response.context["rows"])
        self.assertEqual(statuses, ["confirmed", "possible_lead", "possible_lead", "rejected"])  # not excluded
        self.assertContains(response, "Waiting for a supervisor", count=2)
        self.assertContains(response, "Confirmed by bob")
        self.assertContains(response, "Rejected by bob")
        self.assertContains(response, "ears differ")
        self.assertContains(response, "same ears")  # their own note
        self.assertContains(response, "alice, supports a lead · bob, does not support a lead")
        self.assertNotContains(response, str(self.south_job.code))
        self.assertNotContains(response, 'value="confirm"')  # no decision from this page

    def test_the_empty_queue_says_so(self):
        self._propose(self.charlie, self._candidate(self.south_job))
        sign_in(self.client, self.bob)
        response = self.client.get(QUEUE)
        self.assertContains(response, "No proposal is waiting for you")
        self.assertContains(self.client.get(reverse("portal:dashboard")), "Reviews (0)")

    def test_a_supervisor_decides_from_the_queue_through_the_existing_endpoint(self):
        older, newer = self._propose_all()
        self._verify(self.bob, older.candidate)
        sign_in(self.client, self.bob)
        response = self.client.post(
            reverse("search:lead-decide", args=[self.waiting_job.code, 1, 2]), {"decision": "confirm"}
        )
        self.assertRedirects(response, reverse("search:candidate-compare", args=[self.waiting_job.code, 1, 2]))
        self.assertEqual(LeadReview.objects.get(id=older.id).status, LeadReview.Status.CONFIRMED)
        self.assertEqual([row.review for row in self.client.get(QUEUE).context["rows"]], [newer])

    def test_a_supervisor_is_offered_no_decision_on_their_own_proposal(self):
        self._propose(self.bob, self._candidate(self.waiting_job))
        sign_in(self.client, self.bob)
        response = self.client.get(QUEUE)
        self.assertContains(response, "Your own proposal: another supervisor decides.")
        self.assertNotContains(response, 'value="confirm"')

    def test_an_agency_admin_may_look_but_not_decide(self):
        self._propose_all()
        sign_in(self.client, self.erin)
        response = self.client.get(QUEUE)
        self.assertEqual(len(response.context["rows"]), 2)
        self.assertNotContains(response, 'value="confirm"')
