"""The results page (likely candidates first, the rest folded, a link per face), the retry with the sensitive
detector, and the case page's tiles and close confirmation."""

import re

from django.core.files.storage import default_storage
from django.test import TestCase
from django.urls import reverse

from portal.models import AuditEntry, Case
from portal.services import case_close
from search import pipeline
from search.models import Candidate, ProbeFace, SearchJob
from search.open_set import DECISION_WORDS, LOW_QUALITY
from search.services import NO_FACE_FOUND
from tests.base import AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes, sign_in
from tests.factories import gallery_make, job_make

JUSTIFICATION = "CCTV still of the robbery suspect at the station"


class ResultsPageTestCase(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        photos = {"P01": ["img1.jpg", "img2.jpg"], "P02": ["img16.jpg"], "P03": ["img20.jpg"]}
        gallery_make(
            owner=cls.north, people={who: [faces_dir() / name for name in names] for who, names in photos.items()}
        )
        options = {"purpose": "Robbery", "justification": JUSTIFICATION}
        cls.job = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img5.jpg"), **options)
        cls.selfie = job_make(
            case=cls.case, uploaded_by=cls.alice, data=photo_bytes("selfie-many-people.jpg"), **options
        )
        cls.no_face = job_make(
            case=cls.case, uploaded_by=cls.alice, data=image_bytes("PNG", size=(200, 200)), **options
        )

    def setUp(self):
        sign_in(self.client, self.alice)

    def page(self, job) -> str:
        response = self.client.get(reverse("search:job-detail", args=[job.code]))
        self.assertEqual(response.status_code, 200)
        return response.content.decode()


class FoldedCandidatesTests(ResultsPageTestCase):
    def test_the_likely_candidates_come_first_and_the_rest_are_folded_behind_show_all(self):
        html = self.page(self.job)
        candidates = list(self.job.candidates.order_by("rank"))
        likely = [c for c in candidates if c.likely]
        self.assertTrue(likely and len(likely) < len(candidates))
        self.assertIn(f"Show all {len(candidates)} candidates", html)
        upfront, folded = html.split('<details class="more-candidates">')
        self.assertEqual(upfront.count('data-likely="true"'), len(likely))
        self.assertEqual(folded.count('data-likely="false"'), len(candidates) - len(likely))
        self.assertNotIn('data-likely="true"', folded)
        # Every candidate is still a .candidate on the page: the browser test counts them.
        self.assertEqual(len(re.findall(r'<li class="candidate ', html)), len(candidates))

    def test_a_photo_of_one_face_gets_no_face_navigation(self):
        self.assertNotIn("face-nav", self.page(self.job))

    def test_a_photo_of_several_faces_links_to_each_face_with_its_answer_and_crop(self):
        faces = list(ProbeFace.objects.filter(probe=self.selfie.probe).order_by("index"))
        self.assertGreater(len(faces), 1)
        html = self.page(self.selfie)
        nav = html.split('<nav class="card face-nav"')[1].split("</nav>")[0]
        for face in faces:
            self.assertIn(f'href="#face-{face.index}"', nav)
            self.assertIn(f"Face {face.index} · {DECISION_WORDS[face.decision]}", nav)
            self.assertIn(reverse("search:probe-face-crop", args=[self.selfie.code, face.index]), nav)
            self.assertIn(f'id="face-{face.index}"', html)


class NoFaceFoundTests(ResultsPageTestCase):
    def test_no_face_found_is_explained_calmly_with_the_retry_button(self):
        self.assertEqual(self.no_face.error, NO_FACE_FOUND)
        html = self.page(self.no_face)
        self.assertIn("No face was found in this photo", html)
        self.assertNotIn('role="alert"', html)
        self.assertNotIn("stage-failed", html)
        self.assertIn(reverse("search:job-retry-sensitive", args=[self.no_face.code]), html)
        self.assertIn("Search again with the sensitive detector", html)
        status = self.client.get(reverse("search:job-status", args=[self.no_face.code])).json()
        self.assertEqual(status["status_label"], "No face found")

    def test_a_search_with_likely_candidates_offers_no_retry(self):
        self.assertNotIn("Search again with the sensitive detector", self.page(self.job))


class RetrySensitiveTests(ResultsPageTestCase):
    def retry(self, job, user=None):
        if user is not None:
            sign_in(self.client, user)
        with self.captureOnCommitCallbacks(execute=False):
            return self.client.post(reverse("search:job-retry-sensitive", args=[job.code]), follow=True)

    def new_jobs(self):
        return SearchJob.objects.exclude(pk__in=[self.job.pk, self.selfie.pk, self.no_face.pk])

    def test_the_retry_starts_a_sensitive_search_of_a_copy_of_the_photo(self):
        response = self.retry(self.no_face)
        retry = self.new_jobs().get()
        self.assertRedirects(response, reverse("search:job-detail", args=[retry.code]))
        self.assertTrue(retry.sensitive)
        self.assertEqual(
            (retry.probe.case, retry.offense_category, retry.justification),
            (self.case, self.no_face.offense_category, JUSTIFICATION),
        )
        self.assertNotEqual(retry.probe_id, self.no_face.probe_id)
        self.assertNotEqual(retry.probe.image.name, self.no_face.probe.image.name)
        self.assertEqual(retry.probe.content_hash, self.no_face.probe.content_hash)
        with retry.probe.image.open("rb") as copy, self.no_face.probe.image.open("rb") as first:
            self.assertEqual(copy.read(), first.read())
        started = AuditEntry.objects.get(action=AuditEntry.Action.SEARCH_STARTED, target_id=str(retry.pk))
        self.assertEqual(started.data["retry_of"], str(self.no_face.code))

    def test_the_retry_of_a_low_quality_face_leaves_the_first_results_intact(self):
        first_face = ProbeFace.objects.filter(probe=self.selfie.probe).order_by("index").first()
        ProbeFace.objects.filter(pk=first_face.pk).update(decision=LOW_QUALITY)
        first_candidates = set(Candidate.objects.filter(job=self.selfie).values_list("pk", flat=True))
        first_faces = set(ProbeFace.objects.filter(probe=self.selfie.probe).values_list("pk", flat=True))
        self.assertIn("Search again with the sensitive detector", self.page(self.selfie))
        self.retry(self.selfie)
        retry = self.new_jobs().get()
        pipeline.search_job_run(job_id=retry.id)
        retry.refresh_from_db()
        self.assertEqual(retry.status, SearchJob.Status.DONE)
        self.assertTrue(retry.candidates.exists())
        self.assertEqual(set(Candidate.objects.filter(job=self.selfie).values_list("pk", flat=True)), first_candidates)
        self.assertEqual(
            set(ProbeFace.objects.filter(probe=self.selfie.probe).values_list("pk", flat=True)), first_faces
        )
        self.assertTrue(default_storage.exists(self.selfie.probe.image.name))

    def test_another_agency_gets_404(self):
        sign_in(self.client, self.charlie)
        response = self.client.post(reverse("search:job-retry-sensitive", args=[self.no_face.code]))
        self.assertEqual(response.status_code, 404)
        self.assertFalse(self.new_jobs().exists())

    def test_a_closed_case_is_refused_with_the_reason(self):
        case_close(case=self.case, actor=self.alice)
        response = self.retry(self.no_face)
        self.assertRedirects(response, reverse("search:job-detail", args=[self.no_face.code]))
        self.assertContains(response, "is closed; reopen it to search")
        self.assertFalse(self.new_jobs().exists())

    def test_a_search_that_found_its_faces_is_not_repeated(self):
        response = self.retry(self.job)
        self.assertContains(response, "cannot be repeated with the sensitive detector")
        self.assertFalse(self.new_jobs().exists())

    def test_a_sensitive_search_is_not_repeated(self):
        self.retry(self.no_face)
        retry = self.new_jobs().get()
        pipeline.search_job_run(job_id=retry.id)
        retry.refresh_from_db()
        self.assertEqual((retry.status, retry.error), (SearchJob.Status.FAILED, NO_FACE_FOUND))
        self.assertIn("This search already used the sensitive detector", self.page(retry))
        self.retry(retry)
        self.assertEqual(self.new_jobs().count(), 1)

    def test_it_rejects_get(self):
        response = self.client.get(reverse("search:job-retry-sensitive", args=[self.no_face.code]))
        self.assertEqual(response.status_code, 405)


class CasePageTests(ResultsPageTestCase):
    def case_page(self) -> str:
        return self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()

    def test_the_tiles_count_only_likely_candidates(self):
        likely = self.job.candidates.filter(likely=True).count()
        self.assertGreater(self.job.candidates.count(), likely)
        html = self.case_page()
        self.assertIn(f'data-likely-count="{likely}">{likely} likely candidate', html)
        self.assertNotIn(f"{self.job.candidates.count()} candidates", html)

    def test_a_search_without_a_likely_candidate_says_so(self):
        Candidate.objects.filter(job=self.job).update(likely=False)
        self.assertIn('data-likely-count="0">no likely candidate', self.case_page())

    def test_old_candidates_without_a_recorded_decision_are_counted_by_the_engines_bound(self):
        likely = self.job.candidates.filter(likely=True).count()
        Candidate.objects.filter(job=self.job).update(likely=None)
        self.assertIn(f'data-likely-count="{likely}"', self.case_page())

    def test_closing_without_the_confirmation_is_refused(self):
        response = self.client.post(reverse("portal:case-close", args=[self.case.code]), follow=True)
        self.assertContains(response, "is still open: tick")
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, Case.Status.OPEN)

    def test_closing_with_the_confirmation_closes(self):
        self.client.post(reverse("portal:case-close", args=[self.case.code]), {"confirm": "yes"})
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, Case.Status.CLOSED)

    def test_an_upload_error_keeps_the_purpose_and_justification_and_asks_for_the_photos_again(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        response = self.client.post(
            reverse("search:probe-upload", args=[self.case.code]),
            {
                "photos": [SimpleUploadedFile("n.jpg", b"not a photo")],
                "purpose": "Robbery",
                "justification": JUSTIFICATION,
            },
        )
        self.assertContains(response, "choose the photos again", status_code=400)
        self.assertContains(response, JUSTIFICATION, status_code=400)
        self.assertContains(response, '<option value="Robbery" selected>', status_code=400)
