"""The yearly usage report (issue 19): the command's JSON, the page, the CSV and the scoping, read back against
searches of known outcomes in two years, one of them erased since."""

import io
import json

import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.services import agency_policy_set, user_certification_set
from portal.models import AuditEntry
from search import lawful_use, lineup
from search.leads import candidate_mark, lead_decide, lead_verify
from search.models import LeadReview, SearchJob
from tests.base import AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes, sign_in
from tests.factories import case_make, comparison_entry, gallery_make, job_make, user_make

JUSTIFICATION = "Suspect seen on the station camera at the robbery."
IN_2026 = timezone.make_aware(timezone.datetime(2026, 6, 10, 10, 0))
IN_2025 = timezone.make_aware(timezone.datetime(2025, 3, 5, 10, 0))


def _search(case, user, data, **options):
    return job_make(case=case, uploaded_by=user, data=data, purpose="Robbery", justification=JUSTIFICATION, **options)


class UsageReportTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.staff = user_make("pat", role=Role.PLATFORM_STAFF)
        gallery_make(owner=cls.north, people={"P01": [faces_dir() / "img1.jpg"], "P06": [faces_dir() / "img16.jpg"]})
        with time_machine.travel(IN_2025, tick=False):
            _search(cls.case, cls.alice, photo_bytes("img4.jpg"))  # 2025: one search, not in 2026's figures
        with time_machine.travel(IN_2026, tick=False):
            cls.likely = _search(cls.case, cls.alice, photo_bytes("img2.jpg"))
            cls.no_face = _search(cls.case, cls.alice, image_bytes("PNG", size=(200, 200)))
            lead_job = _search(cls.case, cls.alice, photo_bytes("img2.jpg"))
            candidate = lead_job.candidates.get(rank=1)
            candidate_mark(
                user=cls.alice,
                candidate=candidate,
                decision=LeadReview.Status.POSSIBLE_LEAD,
                comparison_entry=comparison_entry("supports"),
            )
            lead_verify(user=cls.bob, candidate=candidate, comparison_entry=comparison_entry("supports"))
            review = lead_decide(user=cls.bob, candidate=candidate, confirm=True, note="agree")
            lineup.evidence_record(
                review=review,
                user=cls.alice,
                kind="witness",
                description="The shop keeper named the suspect in her statement.",
                obtained_by="DC Rivera",
                obtained_on="2026-06-09",
            )
            lineup.lead_clear(review=review, user=cls.bob, note="")
            # A second case, under an authorisation; its search is erased by a refusal afterwards.
            agency_policy_set(agency=cls.north, actor=None, authorisation_required=True)
            refused_case = case_make(created_by=cls.alice, number="N-002")
            _search(refused_case, cls.alice, photo_bytes("img16.jpg"), run=False)
            lawful_use.authorisation_refuse(
                case=refused_case,
                user=cls.bob,
                authority="District Court",
                reference="DC-1",
                decided_on=timezone.localdate(),
                reason="Not proportionate to the offense.",
            )
            granted_case = case_make(created_by=cls.alice, number="N-003")
            lawful_use.authorisation_grant(
                case=granted_case, user=cls.bob, authority="Court", reference="R-3", decided_on=timezone.localdate()
            )
            user_certification_set(
                actor=None, user=cls.bob, trained_on=timezone.localdate(), certified_until=timezone.localdate()
            )
            user_certification_set(
                actor=None,
                user=cls.alice,
                trained_on=timezone.localdate(),
                certified_until=timezone.datetime(2027, 6, 1).date(),
            )
            case_make(created_by=cls.charlie, number="S-001")
            _search(cls.charlie.agency.cases.get(), cls.charlie, photo_bytes("img2.jpg"))

    def report(self, *args) -> dict:
        out = io.StringIO()
        call_command("usage_report", *args, "--json", stdout=out)
        return json.loads(out.getvalue())

    def test_the_command_counts_every_search_of_the_year_by_its_furthest_outcome(self):
        report = self.report("--year", "2026", "--agency", "north")
        self.assertEqual((report["year"], report["agency"]), (2026, "north"))
        searches = report["searches"]
        self.assertEqual(searches["total"], 4)
        self.assertEqual(searches["by_offense"], {"Robbery": 4})
        self.assertEqual(
            searches["by_outcome"],
            {
                "failed_or_no_face": 1,
                "low_quality": 0,
                "no_likely_candidate": 0,
                "likely_candidate": 1,
                "confirmed_lead": 0,
                "cleared": 1,
                "pending": 0,
                "erased": 1,
            },
        )
        self.assertEqual(sum(searches["by_outcome"].values()), searches["total"])
        self.assertEqual(report["authorisations"], {"requested": 1, "granted": 1, "refused": 1})
        self.assertEqual(report["watchlist_alerts"], 0)
        # Certified on the year's last day: alice (until 2027-06-01), not bob (ended 2026-06-10).
        self.assertEqual(report["certified_users"], 1)
        self.assertEqual(self.report("--year", "2025", "--agency", "north")["searches"]["total"], 1)
        # The platform: both agencies together.
        platform = self.report("--year", "2026")
        self.assertIsNone(platform["agency"])
        self.assertEqual(platform["searches"]["total"], 5)
        # South has no gallery of its own: its search found no likely candidate.
        self.assertEqual(platform["searches"]["by_outcome"]["no_likely_candidate"], 1)
        self.assertTrue(AuditEntry.objects.filter(action="usage_report").exists())

    def test_bad_arguments_exit_2_with_the_reason(self):
        for args in (["--year", "twenty"], ["--year", "1999"], ["--year", "2026", "--agency", "nowhere"]):
            with self.assertRaises(CommandError) as refused:
                call_command("usage_report", *args, "--json", stdout=io.StringIO())
            self.assertEqual(refused.exception.returncode, 2)

    def test_the_page_and_the_csv_for_the_agency_admin_and_a_404_for_another_agency(self):
        sign_in(self.client, self.erin)
        page = self.client.get(reverse("search:usage-report"), {"year": 2026})
        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        self.assertIn("4 searches, by how far they got", html)
        self.assertIn("data-outcome-chart", html)
        self.assertRegex(html, r'data-outcome="cleared"><td>[^<]+</td><td>1</td>')
        csv_text = self.client.get(reverse("search:usage-report-csv"), {"year": 2026}).content.decode()
        self.assertIn("searches,total,4", csv_text)
        self.assertIn("authorisations,refused,1", csv_text)
        self.assertEqual(
            self.client.get(reverse("search:usage-report"), {"year": 2026, "agency": "south"}).status_code, 404
        )
        self.assertEqual(self.client.get(reverse("search:usage-report"), {"year": "x"}).status_code, 400)
        self.client.logout()
        sign_in(self.client, self.bob)  # a supervisor: not theirs
        self.assertEqual(self.client.get(reverse("search:usage-report")).status_code, 403)

    def test_platform_staff_see_any_agency_and_the_whole_platform(self):
        sign_in(self.client, self.staff)
        html = self.client.get(reverse("search:usage-report"), {"year": 2026}).content.decode()
        self.assertIn("The whole platform", html)
        self.assertIn("5 searches", html)
        html = self.client.get(reverse("search:usage-report"), {"year": 2026, "agency": "south"}).content.decode()
        self.assertIn("1 search,", html)
        self.assertEqual(
            self.client.get(reverse("search:usage-report"), {"year": 2026, "agency": "nowhere"}).status_code, 404
        )
        self.assertEqual(SearchJob.objects.filter(agency=self.south).count(), 1)
