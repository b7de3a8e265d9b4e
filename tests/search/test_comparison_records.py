"""The structured comparison record and blind verification: the first person's record comes with their
decision, the second records theirs before they may see the first's, and confirming needs their own record."""

from django.template import Context, Template
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from portal.models import AuditEntry
from search import comparison
from search.leads import ComparisonErrors, ReviewRefused, candidate_mark, lead_decide, lead_verify
from search.models import ComparisonRecord, LeadReview
from tests.base import AgencyFixtureMixin, photo_bytes, shared_photo_path, sign_in
from tests.factories import comparison_entry, gallery_make, job_make, user_make

FIRST_NOTE = "pierced left ear, same scar"


def form(conclusion="supports", value="similar", **overrides) -> dict:
    """A filled-in record form as posted."""
    data = {f"feature_{key}": value for key, _ in comparison.FEATURES}
    data |= {"conclusion": conclusion, "notes": ""}
    return {k: v for k, v in (data | overrides).items() if v is not None}


class ComparisonRecordTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.sue = user_make("sue", agency=cls.north, role=Role.SUPERVISOR)
        gallery_make(
            owner=cls.north,
            people={
                "P01": [shared_photo_path("img1.jpg"), shared_photo_path("img3.jpg")],
                "P02": [shared_photo_path("img16.jpg")],
            },
        )
        cls.job = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        cls.candidate = cls.job.candidates.get(probe_face__index=1, rank=1)
        args = [cls.job.code, 1, 1]
        cls.compare = reverse("search:candidate-compare", args=args)
        cls.first_record = cls.compare + "?records=first"
        cls.mark_url = reverse("search:candidate-mark", args=args)
        cls.decide_url = reverse("search:lead-decide", args=args)

    def propose(self, conclusion="strongly_supports", notes=FIRST_NOTE):
        return candidate_mark(
            user=self.alice,
            candidate=self.candidate,
            decision="possible_lead",
            comparison_entry=comparison_entry(conclusion, notes=notes),
        )

    def verify(self, user=None, conclusion="supports", **features):
        entry = comparison_entry(conclusion)
        entry = comparison.ComparisonEntry(features={**entry.features, **features}, conclusion=conclusion)
        return lead_verify(user=user or self.bob, candidate=self.candidate, comparison_entry=entry)

    def test_the_case_page_lists_a_confirmed_lead_with_both_examiners_conclusions(self):
        self.propose()
        self.verify()
        lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        sign_in(self.client, self.alice)
        page = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
        self.assertIn("Conclusions: alice, strongly supports a lead · bob, supports a lead", page)

    # --- The first person's record ---------------------------------------------------------------

    def test_the_officer_proposes_with_a_structured_record_and_the_audit_keeps_its_conclusion(self):
        sign_in(self.client, self.alice)
        response = self.client.post(
            self.mark_url,
            form("strongly_supports", notes=FIRST_NOTE, decision="possible_lead", feature_ears="different"),
        )
        self.assertRedirects(response, self.compare)
        record = ComparisonRecord.objects.get()
        self.assertEqual(
            (record.examiner, record.role, record.conclusion, record.notes),
            (self.alice, "proposer", "strongly_supports", FIRST_NOTE),
        )
        self.assertEqual(record.features["ears"], "different")
        self.assertEqual(LeadReview.objects.get().proposal_note, FIRST_NOTE)
        recorded = AuditEntry.objects.get(action=AuditEntry.Action.COMPARISON_RECORDED)
        self.assertEqual((recorded.actor, recorded.data["role"]), (self.alice, "proposer"))
        self.assertEqual(recorded.data["conclusion"], "strongly_supports")
        self.assertEqual(recorded.data["features"]["ears"], "different")
        proposed = AuditEntry.objects.get(action=AuditEntry.Action.LEAD_PROPOSED)
        self.assertEqual(proposed.data["conclusion"], "strongly_supports")
        # The proposer sees their own record, and may revise it while nobody has verified.
        page = self.client.get(self.compare)
        self.assertContains(page, "Strongly supports a lead</strong>")
        self.assertContains(page, 'name="feature_ears" value="different" checked')

    def test_every_feature_and_the_conclusion_need_a_value_each_with_its_own_error(self):
        sign_in(self.client, self.alice)
        response = self.client.post(
            self.mark_url, form(conclusion=None, feature_eyes=None, feature_marks="", decision="possible_lead")
        )
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Choose similar, different or not visible for eyes.", status_code=400)
        self.assertContains(response, "Choose similar, different or not visible for marks (scars", status_code=400)
        self.assertContains(response, "Choose a conclusion on the scale.", status_code=400)
        self.assertContains(response, 'id="feature_eyes-error"', status_code=400)
        self.assertNotContains(response, 'id="feature_nose-error"', status_code=400)
        self.assertContains(response, 'name="feature_nose" value="similar" checked', status_code=400)  # kept
        self.assertFalse(ComparisonRecord.objects.exists())
        self.assertFalse(LeadReview.objects.exists())

    def test_the_conclusion_must_fit_the_decision(self):
        for decision, conclusion in (
            ("possible_lead", "inconclusive"),
            ("possible_lead", "excluded"),
            ("excluded", "supports"),
            ("excluded", "strongly_supports"),
        ):
            with self.subTest(decision=decision, conclusion=conclusion):
                with self.assertRaises(ComparisonErrors) as refused:
                    candidate_mark(
                        user=self.alice,
                        candidate=self.candidate,
                        decision=decision,
                        comparison_entry=comparison_entry(conclusion),
                    )
                self.assertEqual(list(refused.exception.errors), ["conclusion"])
        sign_in(self.client, self.alice)
        response = self.client.post(self.mark_url, form("inconclusive", decision="possible_lead"))
        self.assertContains(response, "A possible lead needs a conclusion that supports it", status_code=400)
        self.assertFalse(ComparisonRecord.objects.exists())
        for conclusion in ("inconclusive", "does_not_support", "excluded"):
            candidate_mark(
                user=self.alice,
                candidate=self.candidate,
                decision="excluded",
                comparison_entry=comparison_entry(conclusion, value="different"),
            )
        self.assertEqual(LeadReview.objects.get().status, LeadReview.Status.EXCLUDED)
        self.assertEqual(ComparisonRecord.objects.get().conclusion, "excluded")  # revised, one record

    def test_an_unknown_feature_value_or_conclusion_is_refused_and_nothing_is_stored(self):
        sign_in(self.client, self.alice)
        before = AuditEntry.objects.count()
        for forged, words in (
            (form(feature_tattoo_colour="similar"), "Unknown feature: tattoo_colour"),
            (form(feature_eyes="identical"), "Unknown value for Eyes"),
            (form(conclusion="identification"), "Unknown conclusion"),
        ):
            with self.subTest(words=words):
                response = self.client.post(self.mark_url, {**forged, "decision": "possible_lead"})
                self.assertContains(response, words, status_code=400)
                self.assertContains(response, "Nothing was recorded", status_code=400)
        propose = self.propose()
        sign_in(self.client, self.bob)
        response = self.client.post(self.decide_url, {**form(conclusion="identified"), "decision": "record"})
        self.assertContains(response, "Unknown conclusion", status_code=400)
        self.assertEqual(list(ComparisonRecord.objects.values_list("role", flat=True)), ["proposer"])
        self.assertEqual(LeadReview.objects.get(), propose)
        # The refusals wrote nothing; only the proposal above did (its record and the proposal).
        self.assertEqual(AuditEntry.objects.count() - before, 2)

    # --- Blind verification ----------------------------------------------------------------------

    def test_the_verifier_sees_who_proposed_but_not_the_record_conclusion_or_note(self):
        self.propose()
        sign_in(self.client, self.bob)
        page = self.client.get(self.compare)
        self.assertContains(page, "proposed by alice")
        self.assertContains(page, "data-blind")
        self.assertContains(page, "Save my comparison")
        self.assertNotContains(page, FIRST_NOTE)
        self.assertNotContains(page, "data-records")
        self.assertNotContains(page, " checked")  # the form is empty: nothing of the first record pre-filled
        self.assertNotContains(page, "Confirm the lead")
        viewed = AuditEntry.objects.filter(action=AuditEntry.Action.COMPARISON_VIEWED, actor=self.bob).get()
        self.assertIs(viewed.data["first_record_shown"], False)

    def test_a_verifier_asking_for_the_first_record_before_recording_is_refused_without_an_audit_entry(self):
        self.propose()
        sign_in(self.client, self.bob)
        before = AuditEntry.objects.count()
        response = self.client.get(self.first_record)
        self.assertEqual(response.status_code, 403)
        self.assertContains(response, "Record your own comparison and conclusion first", status_code=403)
        self.assertNotContains(response, FIRST_NOTE, status_code=403)
        self.assertNotContains(response, "<img", status_code=403)
        self.assertEqual(AuditEntry.objects.count(), before)
        # Another officer of the agency is refused too while the proposal waits.
        olga = user_make("olga", agency=self.north)
        sign_in(self.client, olga)
        self.assertContains(self.client.get(self.first_record), "stays hidden", status_code=403)
        # The proposer reads their own.
        sign_in(self.client, self.alice)
        self.assertContains(self.client.get(self.first_record), FIRST_NOTE)

    def test_after_recording_both_records_are_side_by_side_with_the_differences_marked(self):
        self.propose()
        self.verify(conclusion="supports", ears="different")
        sign_in(self.client, self.bob)
        response = self.client.get(self.first_record)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, FIRST_NOTE)
        self.assertContains(response, "The two records side by side")
        self.assertContains(response, "First examiner: alice")
        self.assertContains(response, "Verifier: bob")
        self.assertContains(response, "> Differs</span>", count=2)  # the ears and the conclusion
        self.assertContains(response, "> Same</span>", count=5)
        self.assertContains(response, "Confirm the lead")
        self.assertNotContains(response, "Save my comparison")  # recorded once, not again
        viewed = AuditEntry.objects.filter(action=AuditEntry.Action.COMPARISON_VIEWED, actor=self.bob).get()
        self.assertIs(viewed.data["first_record_shown"], True)

    def test_the_verifier_records_through_the_decide_url_with_per_field_errors(self):
        self.propose()
        sign_in(self.client, self.bob)
        response = self.client.post(self.decide_url, {**form(feature_nose=None), "decision": "record"})
        self.assertContains(response, "Choose similar, different or not visible for nose.", status_code=400)
        self.assertNotContains(response, FIRST_NOTE, status_code=400)  # still blind
        self.client.post(self.decide_url, {**form("inconclusive", notes="eyes unclear"), "decision": "record"})
        mine = ComparisonRecord.objects.get(role="verifier")
        self.assertEqual((mine.examiner, mine.conclusion, mine.notes), (self.bob, "inconclusive", "eyes unclear"))
        entry = AuditEntry.objects.get(action=AuditEntry.Action.COMPARISON_RECORDED, actor=self.bob)
        self.assertEqual((entry.data["role"], entry.data["conclusion"]), ("verifier", "inconclusive"))

    def test_the_verifiers_record_stays_as_recorded_and_the_proposer_can_no_longer_revise(self):
        self.propose()
        self.verify()
        with self.assertRaisesMessage(ReviewRefused, "it stays as recorded"):
            self.verify(conclusion="excluded")
        with self.assertRaisesMessage(ReviewRefused, "bob is already verifying"):
            self.verify(user=self.sue)
        with self.assertRaisesMessage(ReviewRefused, "bob has recorded their verification"):
            candidate_mark(
                user=self.alice,
                candidate=self.candidate,
                decision="excluded",
                comparison_entry=comparison_entry("excluded"),
            )
        # Sue is no verifier of this one and stays blind until it is decided.
        sign_in(self.client, self.sue)
        self.assertContains(self.client.get(self.first_record), "bob is verifying", status_code=403)

    def test_confirming_needs_the_verifiers_own_record_with_a_supporting_conclusion(self):
        self.propose()
        with self.assertRaisesMessage(ReviewRefused, "Record your own comparison and conclusion before"):
            lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        with self.assertRaisesMessage(ReviewRefused, "Record your own comparison and conclusion before"):
            lead_decide(user=self.bob, candidate=self.candidate, confirm=False, note="no")
        sign_in(self.client, self.bob)
        response = self.client.post(self.decide_url, {"decision": "confirm"}, follow=True)
        self.assertContains(response, "Record your own comparison and conclusion before")
        self.verify(conclusion="inconclusive")
        with self.assertRaisesMessage(ReviewRefused, "Your conclusion (inconclusive) does not support a lead"):
            lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        page = self.client.get(self.compare)
        self.assertContains(page, 'value="confirm" disabled')
        # Nobody else confirms on bob's record.
        with self.assertRaisesMessage(ReviewRefused, "Record your own comparison"):
            lead_decide(user=self.sue, candidate=self.candidate, confirm=False, note="no")
        review = lead_decide(user=self.bob, candidate=self.candidate, confirm=False, note="eyes unclear")
        self.assertEqual(review.status, LeadReview.Status.REJECTED)
        rejected = AuditEntry.objects.get(action=AuditEntry.Action.LEAD_REJECTED)
        self.assertEqual(
            (rejected.data["proposer_conclusion"], rejected.data["verifier_conclusion"]),
            ("strongly_supports", "inconclusive"),
        )

    def test_the_whole_blind_round_through_the_pages(self):
        sign_in(self.client, self.alice)
        self.client.post(self.mark_url, form("supports", notes=FIRST_NOTE, decision="possible_lead"))
        sign_in(self.client, self.bob)
        self.assertEqual(self.client.get(self.first_record).status_code, 403)
        self.client.post(self.decide_url, {**form("strongly_supports"), "decision": "record"})
        self.assertContains(self.client.get(self.first_record), FIRST_NOTE)
        response = self.client.post(self.decide_url, {"decision": "confirm", "note": "agree"}, follow=True)
        self.assertContains(response, "Lead confirmed by a second person.")
        confirmed = AuditEntry.objects.get(action=AuditEntry.Action.LEAD_CONFIRMED)
        self.assertEqual(
            (confirmed.data["proposer_conclusion"], confirmed.data["verifier_conclusion"]),
            ("supports", "strongly_supports"),
        )
        # Decided: everyone of the agency sees both records.
        sign_in(self.client, self.sue)
        page = self.client.get(self.first_record)
        self.assertContains(page, "The two records side by side")
        self.assertContains(page, FIRST_NOTE)

    def test_another_agency_gets_a_404_for_the_page_the_first_record_and_every_post(self):
        self.propose()
        sign_in(self.client, self.charlie)
        for response in (
            self.client.get(self.compare),
            self.client.get(self.first_record),
            self.client.post(self.mark_url, form(decision="possible_lead")),
            self.client.post(self.decide_url, {**form(), "decision": "record"}),
            self.client.post(self.decide_url, {"decision": "confirm"}),
        ):
            self.assertEqual(response.status_code, 404)
        self.assertEqual(ComparisonRecord.objects.count(), 1)

    # --- Proposals from before comparison records --------------------------------------------------

    def test_an_older_proposal_without_a_record_is_verified_and_decided_on_the_verifiers_record_alone(self):
        LeadReview.objects.create(
            candidate=self.candidate,
            status=LeadReview.Status.POSSIBLE_LEAD,
            proposed_by=self.alice,
            proposed_at=timezone.now(),
            proposal_note=FIRST_NOTE,
        )
        sign_in(self.client, self.bob)
        self.assertNotContains(self.client.get(self.compare), FIRST_NOTE)  # its note is blind too
        self.assertEqual(self.client.get(self.first_record).status_code, 403)
        self.client.post(self.decide_url, {**form("supports"), "decision": "record"})
        page = self.client.get(self.first_record)
        self.assertContains(page, "No structured record (older proposal)")
        self.assertContains(page, FIRST_NOTE)
        self.assertContains(page, "Verifier: bob")
        self.assertNotContains(page, "> Differs</span>")  # nothing to set it against
        review = lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        self.assertEqual(review.status, LeadReview.Status.CONFIRMED)
        confirmed = AuditEntry.objects.get(action=AuditEntry.Action.LEAD_CONFIRMED)
        self.assertEqual(
            (confirmed.data["proposer_conclusion"], confirmed.data["verifier_conclusion"]), ("", "supports")
        )

    # --- Reads for other pages (the case page, the report) ---------------------------------------

    def test_the_records_of_candidates_are_read_in_one_query_and_shown_for_decided_leads_only(self):
        self.propose()
        self.verify()
        with self.assertNumQueries(1):
            records = comparison.comparison_records_for([self.candidate.id])
            names = {role: record.examiner.username for role, record in records[self.candidate.id].items()}
        self.assertEqual(names, {"proposer": "alice", "verifier": "bob"})
        tag = Template("{% load candidates %}{% comparison_conclusions candidate %}")
        self.candidate.refresh_from_db()
        self.assertNotIn("alice", tag.render(Context({"candidate": self.candidate})))  # still waiting: blind
        lead_decide(user=self.bob, candidate=self.candidate, confirm=True)
        self.candidate.refresh_from_db()
        rendered = tag.render(Context({"candidate": self.candidate}))
        self.assertIn("alice, strongly supports a lead · bob, supports a lead", rendered)

    def test_the_page_shows_the_profiles_other_photos_and_the_landmarks_for_the_overlay(self):
        sign_in(self.client, self.alice)
        page = self.client.get(self.compare)
        photos = page.context["photos"]
        self.assertEqual(len(photos), 2)  # P01's two photos, the one found first
        self.assertEqual(photos[0]["code"], str(self.candidate.face_image.code))
        self.assertContains(page, reverse("search:face-photo", args=[self.candidate.face_image.code]))
        self.assertContains(page, reverse("search:probe-image", args=[self.job.probe.code]))
        self.assertContains(page, "data-photo-choice", count=2)
        self.assertContains(page, "Right eye")  # the landmark points' names, for the overlay
        self.assertContains(page, "compare.js")
        self.assertNotContains(page, "<script>")
