"""The audit log in the portal: supervisors and agency admins of the agency, filters, paging, CSV, summary."""

import csv
import io

from django.test import TestCase
from django.urls import reverse

from portal.audit import audit_record
from portal.models import AuditEntry
from search import pipeline
from search.services import probe_submit
from tests.base import AgencyFixtureMixin, image_bytes, photo_bytes, sign_in


class AuditPageTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        job = probe_submit(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img1.jpg"))
        pipeline.search_job_run(job_id=job.id)  # no gallery: done, found no one
        failed = probe_submit(case=cls.case, uploaded_by=cls.alice, data=image_bytes("PNG", size=(120, 120)))
        pipeline.search_job_run(job_id=failed.id)
        for number in range(60):
            audit_record(action=AuditEntry.Action.PROFILE_VIEWED, actor=cls.bob, detail=f"view {number}")
        audit_record(action=AuditEntry.Action.PROFILE_VIEWED, actor=cls.charlie, detail="south's own")

    def test_officers_have_no_audit_page(self):
        sign_in(self.client, self.alice)
        self.assertEqual(self.client.get(reverse("portal:audit-log")).status_code, 403)
        self.assertEqual(self.client.get(reverse("portal:audit-export")).status_code, 403)

    def test_a_supervisor_sees_the_agencys_log_paged_and_nothing_of_another_agency(self):
        sign_in(self.client, self.bob)
        response = self.client.get(reverse("portal:audit-log"))
        self.assertContains(response, "Page 1 of 2")
        self.assertNotContains(response, "south&#x27;s own")
        self.assertNotContains(self.client.get(reverse("portal:audit-log"), {"page": 2}), "south&#x27;s own")

    def test_filters_by_user_case_action_and_date(self):
        sign_in(self.client, self.bob)
        response = self.client.get(reverse("portal:audit-log"), {"username": "alice", "action": "search_started"})
        self.assertEqual(response.context["page"].paginator.count, 2)
        response = self.client.get(reverse("portal:audit-log"), {"case": "N-001"})
        self.assertTrue(all(e.case_id == self.case.id for e in response.context["page"].object_list))
        response = self.client.get(reverse("portal:audit-log"), {"date_from": "2000-01-01", "date_to": "2000-01-02"})
        self.assertContains(response, "No entry matches")

    def test_the_summary_counts_searches_and_those_that_found_no_one(self):
        sign_in(self.client, self.bob)
        summaries = {row["username"]: row for row in self.client.get(reverse("portal:audit-log")).context["summaries"]}
        self.assertEqual(summaries["alice"]["searches"], 2)
        self.assertEqual(summaries["alice"]["found_no_one"], 1)
        self.assertEqual(summaries["alice"]["confirmed"], 0)
        self.assertEqual(sum(summaries["alice"]["weeks"]), 2)

    def test_the_csv_export_holds_the_filtered_entries_and_is_itself_audited(self):
        sign_in(self.client, self.erin)
        response = self.client.get(reverse("portal:audit-export"), {"username": "alice"})
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        self.assertEqual(rows[0][:4], ["id", "at", "action", "user"])
        self.assertTrue(all(row[3] == "alice" for row in rows[1:]))
        self.assertIn("search_started", [row[2] for row in rows[1:]])
        exported = AuditEntry.objects.get(action="audit_exported")
        self.assertEqual((exported.actor, exported.detail), (self.erin, f"{len(rows) - 1} entries"))
