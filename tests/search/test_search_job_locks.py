"""The locks a search takes: none that an officer's own uploads need, or the two deadlock."""

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from search import pipeline
from search.models import SearchJob
from search.services import probe_submit
from tests.base import AgencyFixtureMixin, photo_bytes


class SearchJobLockTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_storing_results_locks_the_job_row_and_not_the_officers(self):
        # An upload holds the audit-chain lock until its commit, where the new job's foreign key needs a
        # key-share lock on the officer's row. A worker that row-locked the officer and then waited for
        # the audit lock deadlocked with it (found by make load: a 500 on upload).
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img12.jpg"))
        with CaptureQueriesContext(connection) as queries:
            pipeline.search_job_run(job_id=job.id)

        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.DONE)
        locking = [query["sql"] for query in queries if "FOR UPDATE" in query["sql"]]
        self.assertTrue(locking)
        for sql in locking:
            if '"accounts_user"' in sql:
                self.assertTrue(sql.endswith('FOR UPDATE OF "search_searchjob"'), sql)
