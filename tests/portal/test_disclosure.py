"""The disclosure packet of a case: a ZIP of disclosure.json, disclosure.pdf and manifest.json that discloses every
search (also one that found no face, every candidate chosen or not, and a search whose rows were erased, from its
audit entries), every decision with names and times, and is audited with the SHA-256 of the bytes served.
Real searches of real photos; a lead confirmed by two people and cleared on independent evidence."""

import hashlib
import io
import json
import zipfile

from django.test import TestCase
from django.urls import reverse
from pypdf import PdfReader

from accounts import tokens
from accounts.models import Role
from portal.audit import audit_record
from portal.models import AuditEntry
from portal.reports.disclosure import DisclosureRefused, disclosure_packet
from search import lineup
from search.leads import candidate_mark, lead_decide, lead_verify
from search.models import LeadReview, SearchJob
from tests.base import AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes, sign_in
from tests.factories import case_make, comparison_entry, gallery_make, job_make, user_make


class DisclosureTestCase(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.bob.first_name, cls.bob.last_name = "Bob", "Reyes"
        cls.bob.save()
        cls.sue = user_make("sue", agency=cls.north, role=Role.SUPERVISOR)
        cls.case = case_make(created_by=cls.alice, number="N-<7>", title="Robbery <b>at</b> the station & co")
        gallery_make(owner=cls.north, people={"P01": [faces_dir() / "img1.jpg"], "P02": [faces_dir() / "img16.jpg"]})
        cls.found = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        cls.no_face = job_make(case=cls.case, uploaded_by=cls.alice, data=image_bytes(size=(320, 240)))
        cls.erased = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img5.jpg"))
        cls.lead = cls.found.candidates.get(rank=1)
        candidate_mark(
            user=cls.alice,
            candidate=cls.lead,
            decision=LeadReview.Status.POSSIBLE_LEAD,
            comparison_entry=comparison_entry("supports", notes="same scar"),
        )
        lead_verify(user=cls.bob, candidate=cls.lead, comparison_entry=comparison_entry("strongly_supports"))
        review = lead_decide(user=cls.bob, candidate=cls.lead, confirm=True, note="agree")
        lineup.evidence_record(
            review=review,
            user=cls.alice,
            kind="document",
            description="Bank card used at the station kiosk two minutes after the robbery.",
            obtained_by="DC Morgan",
            obtained_on="2026-11-20",
        )
        lineup.lead_clear(review=review, user=cls.sue, note="card records checked")
        # The third search's rows are erased after its audit entries exist, as a refused authorisation does.
        cls.erased_code, cls.erased_hash = str(cls.erased.code), cls.erased.probe.content_hash
        audit_record(
            action=AuditEntry.Action.CASE_SEARCH_DATA_ERASED,
            actor=cls.bob,
            case=cls.case,
            target=cls.case,
            detail="Search data erased (authorisation refused)",
            data={"reason": "authorisation refused by the court", "jobs": [cls.erased_code]},
        )
        probe = cls.erased.probe
        SearchJob.objects.filter(pk=cls.erased.pk).delete()
        probe.delete()

    def download(self, user):
        sign_in(self.client, user)
        return self.client.get(reverse("portal:case-disclosure", args=[self.case.code]))

    def unzip(self, content: bytes) -> dict[str, bytes]:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}


class DisclosurePacketTests(DisclosureTestCase):
    def test_the_packet_is_served_privately_and_its_hash_is_in_the_audit(self):
        response = self.download(self.bob)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/zip")
        self.assertTrue(response["Content-Disposition"].startswith("attachment;"))
        self.assertEqual(response["Cache-Control"], "private, no-store")
        entry = AuditEntry.objects.get(action=AuditEntry.Action.DISCLOSURE_PACKET)
        self.assertEqual(entry.data["sha256"], hashlib.sha256(response.content).hexdigest())
        self.assertEqual((entry.data["bytes"], entry.actor, entry.case), (len(response.content), self.bob, self.case))
        files = self.unzip(response.content)
        self.assertEqual(sorted(files), ["disclosure.json", "disclosure.pdf", "manifest.json"])
        manifest = json.loads(files["manifest.json"])
        for name in ("disclosure.json", "disclosure.pdf"):
            self.assertEqual(manifest["files"][name]["sha256"], hashlib.sha256(files[name]).hexdigest())

    def test_the_json_discloses_every_search_candidate_and_decision(self):
        data = json.loads(self.unzip(self.download(self.erin).content)["disclosure.json"])
        self.assertEqual((data["format"], data["case"]["number"], data["case"]["agency"]), (1, "N-<7>", "North Police"))
        self.assertIn("not identifications", data["statement"])
        searches = {search["id"]: search for search in data["searches"]}
        self.assertEqual(list(searches), [str(self.found.code), str(self.no_face.code), self.erased_code])
        self.assertEqual([s["number"] for s in data["searches"]], [1, 2, 3])

        found = searches[str(self.found.code)]
        self.assertEqual(found["probe"]["sha256"], self.found.probe.content_hash)
        self.assertEqual(found["engine"], self.found.engine)
        self.assertEqual(set(found["thresholds"]), set(self.found.thresholds))
        candidates = found["faces"][0]["candidates"]
        self.assertEqual(len(candidates), self.found.candidates.count())
        self.assertGreater(len(candidates), 1)
        chosen, *others = candidates
        self.assertEqual((chosen["rank"], chosen["profile"], chosen["review_state"]), (1, "P01", "confirmed"))
        self.assertTrue(all(c["review_state"] == "not_reviewed" and c["review"] is None for c in others))
        self.assertIn("P02", [c["profile"] for c in others])  # a candidate not chosen, disclosed
        gate = chosen["review"]["lineup_gate"]
        self.assertTrue(gate["cleared_for_identification"])
        self.assertEqual(gate["cleared_by"]["username"], "sue")
        self.assertEqual(gate["evidence"][0]["kind"], "document")
        self.assertEqual(
            [(r["role"], r["examiner"]["username"], r["conclusion"]) for r in chosen["comparison_records"]],
            [("proposer", "alice", "supports"), ("verifier", "bob", "strongly_supports")],
        )
        self.assertEqual(chosen["review"]["reviewed_by"], {"username": "bob", "full_name": "Bob Reyes"})

        no_face = searches[str(self.no_face.code)]
        self.assertEqual((no_face["status"], no_face["found_no_face"], no_face["faces"]), ("failed", True, []))

        erased = searches[self.erased_code]
        self.assertTrue(erased["data_erased"])
        self.assertEqual(erased["erased_because"], "authorisation refused by the court")
        self.assertEqual(erased["probe"]["sha256"], self.erased_hash)
        self.assertEqual((erased["started_by"]["username"], erased["status"]), ("alice", "done"))
        self.assertEqual(
            erased["justification"],
            AuditEntry.objects.get(action="search_started", data__job=self.erased_code).data["justification"],
        )
        self.assertGreater(erased["results"]["candidates"], 0)

        decisions = [(d["decision"], d["by"]["username"]) for d in data["decisions"]]
        self.assertEqual(
            decisions,
            [
                ("proposed_as_possible_lead", "alice"),  # the proposal's time is taken just before its record's
                ("comparison_recorded (proposer)", "alice"),
                ("comparison_recorded (verifier)", "bob"),
                ("confirmed", "bob"),
                ("independent_evidence_recorded", "alice"),
                ("cleared_for_identification_procedures", "sue"),
            ],
        )
        audit_ids = [entry["id"] for entry in data["audit"]]
        self.assertEqual(
            audit_ids,
            list(
                AuditEntry.objects.filter(case=self.case)
                .exclude(action=AuditEntry.Action.DISCLOSURE_PACKET)
                .order_by("id")
                .values_list("id", flat=True)
            ),
        )
        self.assertEqual(data["summary"]["searches_data_erased"], 1)
        self.assertEqual(data["summary"]["cleared_for_identification"], 1)

    def test_the_pdf_reads_as_the_json_and_escapes_what_people_typed(self):
        files = self.unzip(self.download(self.bob).content)
        pages = [
            " ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(files["disclosure.pdf"])).pages
        ]
        first, text = pages[0], " ".join(pages)
        self.assertIn("Disclosure packet — case N-<7>", first)
        self.assertIn("Robbery <b>at</b> the station & co", first)
        self.assertIn("Results of a face search are leads, never identifications.", first)
        self.assertIn("3 — 0 found no likely candidate, 1 found no face, 1 with data erased", first)
        self.assertIn("DATA ERASED", text)
        self.assertIn("authorisation refused by the court", text)
        self.assertIn("Cleared for identification procedures on", text)
        self.assertIn("Appendix: the audit entries of this case", text)
        self.assertIn("P02", text)  # the candidate nobody chose

    def test_only_supervisors_and_admins_of_the_agency(self):
        self.assertEqual(self.download(self.alice).status_code, 403)
        self.assertEqual(self.download(self.dave).status_code, 404)
        self.client.logout()
        self.assertEqual(self.client.get(reverse("portal:case-disclosure", args=[self.case.code])).status_code, 302)
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.DISCLOSURE_PACKET).exists())

    def test_the_packet_itself_refuses_officers_and_other_agencies(self):
        for user in (self.alice, self.dave):
            with self.subTest(user=user.username), self.assertRaises(DisclosureRefused):
                disclosure_packet(case=self.case, user=user)
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.DISCLOSURE_PACKET).exists())

    def test_the_case_page_links_it_for_supervisors_only(self):
        url = reverse("portal:case-disclosure", args=[self.case.code])
        sign_in(self.client, self.bob)
        self.assertContains(self.client.get(reverse("portal:case-detail", args=[self.case.code])), url)
        sign_in(self.client, self.alice)
        self.assertNotContains(self.client.get(reverse("portal:case-detail", args=[self.case.code])), url)


class DisclosureApiTests(DisclosureTestCase):
    def get(self, user):
        token = tokens.api_token_create(user=user, name="disclosure").token
        return self.client.get(
            reverse("api:case-disclosure", args=[self.case.code]), headers={"Authorization": f"Bearer {token}"}
        )

    def test_the_api_serves_the_same_packet_and_audits_it(self):
        response = self.get(self.bob)
        self.assertEqual((response.status_code, response["Content-Type"]), (200, "application/zip"))
        entry = AuditEntry.objects.get(action=AuditEntry.Action.DISCLOSURE_PACKET)
        self.assertEqual(entry.data["sha256"], hashlib.sha256(response.content).hexdigest())
        self.assertIn("disclosure.json", self.unzip(response.content))

    def test_officers_get_403_and_another_agency_404(self):
        officer = self.get(self.alice)
        self.assertEqual((officer.status_code, officer["Content-Type"]), (403, "application/problem+json"))
        self.assertEqual(self.get(self.dave).status_code, 404)
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.DISCLOSURE_PACKET).exists())
