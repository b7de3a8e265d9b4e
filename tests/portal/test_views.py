"""The investigator pages against the real database: status codes, scoping, form errors, headers."""

from django.test import TestCase
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from portal.models import Case
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import SearchJob
from search.preparation import probe_preview_run
from search.services import probe_prepare_start, probe_submit
from tests.base import GALLERY_PROVENANCE, PASSWORD, AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes, sign_in


class PortalViewTestCase(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.gallery, _ = gallery_get_or_create(
            owner=cls.north, name="North bookings", legal_basis="Police Act s.64", **GALLERY_PROVENANCE
        )
        items = [
            EnrolmentItem(path=str(faces_dir() / name), display_name=identity)
            for identity, names in {"P01": ["img1.jpg", "img2.jpg"], "P02": ["img16.jpg"]}.items()
            for name in names
        ]
        gallery_enrol_batch(gallery=cls.gallery, gallery_created=True, items=items)
        cls.job = probe_submit(
            case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img5.jpg"), original_name="img5.jpg"
        )
        pipeline.search_job_run(job_id=cls.job.id)
        cls.job.refresh_from_db()
        cls.candidate = cls.job.candidates.get(rank=1)
        # A probe being prepared (not searched yet), its faces found as a worker would.
        cls.prepared = probe_prepare_start(
            case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img5.jpg"), original_name="img5.jpg"
        )
        probe_preview_run(probe_id=cls.prepared.id)
        cls.profile = cls.candidate.profile
        cls.face_image = cls.candidate.face_image
        from accounts.services import invitation_create

        cls.invitation, _ = invitation_create(actor=cls.erin, email="new@north.example", role="officer")
        from portal.reports.render import case_report_render
        from portal.services import case_report_request

        cls.report = case_report_request(case=cls.case, user=cls.alice)
        case_report_render(report_id=cls.report.id)
        # A video whose stills are ready, as a worker leaves it.
        from search.models import ProbeVideo
        from search.storage import media_store

        cls.video = ProbeVideo(
            agency=cls.north,
            case=cls.case,
            uploaded_by=cls.alice,
            content_hash="0" * 64,
            container="mp4",
            status=ProbeVideo.Status.READY,
        )
        still = media_store(f"videos/{cls.north.code}/{cls.video.code}/still-1500.jpg", photo_bytes("img5.jpg"))
        cls.video.stills = [{"time_ms": 1500, "image": still, "sharpness": 100.0, "faces": 1}]
        cls.video.save()
        from accounts.tokens import api_token_create

        cls.api_token = api_token_create(user=cls.alice, name="matrix").api_token
        # A watch-list proposal and an alert on it (search/watchlist.py), for the watch-list's object URLs.
        from django.utils import timezone

        from search.models import WatchlistAlert
        from search.watchlist import watchlist_propose

        cls.watchlist_entry = watchlist_propose(probe_face=cls.candidate.probe_face, user=cls.alice)
        cls.watchlist_alert = WatchlistAlert.objects.create(
            entry=cls.watchlist_entry,
            candidate=cls.candidate,
            face_image=cls.face_image,
            engine=cls.candidate.engine,
            distance=cls.candidate.distance,
            threshold=cls.candidate.distance,
            created_at=timezone.now(),
        )

    def sign_in(self, user):
        sign_in(self.client, user)

    def object_urls(self) -> dict[str, tuple[str, str]]:
        """Every URL that names an object, with the HTTP method it takes."""
        job, case = self.job.code, self.case.code
        return {
            "portal:case-detail": (reverse("portal:case-detail", args=[case]), "get"),
            "portal:case-close": (reverse("portal:case-close", args=[case]), "post"),
            "portal:case-reopen": (reverse("portal:case-reopen", args=[case]), "post"),
            "search:probe-upload": (reverse("search:probe-upload", args=[case]), "post"),
            "search:job-detail": (reverse("search:job-detail", args=[job]), "get"),
            "search:job-status": (reverse("search:job-status", args=[job]), "get"),
            "search:job-results": (reverse("search:job-results", args=[job]), "get"),
            "search:job-retry-sensitive": (reverse("search:job-retry-sensitive", args=[job]), "post"),
            "search:candidate-compare": (reverse("search:candidate-compare", args=[job, 1, 1]), "get"),
            "search:candidate-mark": (reverse("search:candidate-mark", args=[job, 1, 1]), "post"),
            "search:lead-decide": (reverse("search:lead-decide", args=[job, 1, 1]), "post"),
            "search:lead-evidence": (reverse("search:lead-evidence", args=[job, 1, 1]), "get"),
            "search:lead-clear": (reverse("search:lead-clear", args=[job, 1, 1]), "post"),
            "portal:case-disclosure": (reverse("portal:case-disclosure", args=[case]), "get"),
            "search:profile-detail": (reverse("search:profile-detail", args=[self.profile.code]), "get"),
            "search:probe-image": (reverse("search:probe-image", args=[self.job.probe.code]), "get"),
            "search:job-annotated-image": (reverse("search:job-annotated-image", args=[job]), "get"),
            "search:probe-face-crop": (reverse("search:probe-face-crop", args=[job, 1]), "get"),
            "search:face-crop": (reverse("search:face-crop", args=[self.face_image.code]), "get"),
            "search:face-photo": (reverse("search:face-photo", args=[self.face_image.code]), "get"),
            "search:probe-prepare": (reverse("search:probe-prepare", args=[self.prepared.code]), "get"),
            "search:probe-prepare-status": (reverse("search:probe-prepare-status", args=[self.prepared.code]), "get"),
            "search:probe-edit": (reverse("search:probe-edit", args=[self.prepared.code]), "post"),
            "search:probe-prepared-search": (
                reverse("search:probe-prepared-search", args=[self.prepared.code]),
                "post",
            ),
            "search:probe-preview-face": (reverse("search:probe-preview-face", args=[self.prepared.code, 1]), "get"),
            "search:probe-original-image": (reverse("search:probe-original-image", args=[self.prepared.code]), "get"),
            "search:video-upload": (reverse("search:video-upload", args=[case]), "post"),
            "search:video-detail": (reverse("search:video-detail", args=[self.video.code]), "get"),
            "search:video-status": (reverse("search:video-status", args=[self.video.code]), "get"),
            "search:video-search": (reverse("search:video-search", args=[self.video.code]), "post"),
            "search:video-still-image": (reverse("search:video-still-image", args=[self.video.code, 1]), "get"),
            "accounts:user-deactivate": (reverse("accounts:user-deactivate", args=[self.alice.code]), "post"),
            "accounts:user-reactivate": (reverse("accounts:user-reactivate", args=[self.alice.code]), "post"),
            "accounts:user-role": (reverse("accounts:user-role", args=[self.alice.code]), "post"),
            "accounts:user-unlock": (reverse("accounts:user-unlock", args=[self.alice.code]), "post"),
            "portal:case-report-request": (reverse("portal:case-report-request", args=[case]), "post"),
            "portal:case-report-download": (reverse("portal:case-report-download", args=[self.report.code]), "get"),
            "portal:case-report-status": (reverse("portal:case-report-status", args=[self.report.code]), "get"),
            "accounts:invitation-revoke": (reverse("accounts:invitation-revoke", args=[self.invitation.code]), "post"),
            "accounts:token-revoke": (reverse("accounts:token-revoke", args=[self.api_token.code]), "post"),
            "accounts:user-certification": (reverse("accounts:user-certification", args=[self.alice.code]), "post"),
            "search:authorisation-grant": (reverse("search:authorisation-grant", args=[case]), "post"),
            "search:authorisation-refuse": (reverse("search:authorisation-refuse", args=[case]), "post"),
            "search:watchlist-propose": (reverse("search:watchlist-propose", args=[job, 1]), "post"),
            "search:watchlist-decide": (reverse("search:watchlist-decide", args=[self.watchlist_entry.code]), "post"),
            "search:watchlist-end": (reverse("search:watchlist-end", args=[self.watchlist_entry.code]), "post"),
            "search:watchlist-alert-open": (
                reverse("search:watchlist-alert-open", args=[self.watchlist_alert.id]),
                "post",
            ),
        }

    def api_urls(self) -> dict[str, str]:
        """Every URL of the REST API (no session: a token; tests/api/ holds its scoping with tokens)."""
        job, case, report = self.job.code, self.case.code, self.report.code
        candidate = [job, 1, 1]
        return {
            "api:schema": reverse("api:schema"),
            "api:docs": reverse("api:docs"),
            "api:not-found": "/api/v1/no-such-resource/",
            "api:case-list": reverse("api:case-list"),
            "api:case-detail": reverse("api:case-detail", args=[case]),
            "api:case-close": reverse("api:case-close", args=[case]),
            "api:case-searches": reverse("api:case-searches", args=[case]),
            "api:case-report": reverse("api:case-report", args=[case]),
            "api:report-detail": reverse("api:report-detail", args=[report]),
            "api:report-download": reverse("api:report-download", args=[report]),
            "api:purposes": reverse("api:purposes"),
            "api:search-detail": reverse("api:search-detail", args=[job]),
            "api:search-results": reverse("api:search-results", args=[job]),
            "api:candidate-detail": reverse("api:candidate-detail", args=candidate),
            "api:candidate-mark": reverse("api:candidate-mark", args=candidate),
            "api:lead-verify": reverse("api:lead-verify", args=candidate),
            "api:lead-decide": reverse("api:lead-decide", args=candidate),
            "api:lead-evidence": reverse("api:lead-evidence", args=candidate),
            "api:lead-clear": reverse("api:lead-clear", args=candidate),
            "api:case-disclosure": reverse("api:case-disclosure", args=[case]),
            "api:gallery-list": reverse("api:gallery-list"),
            "api:gallery-detail": reverse("api:gallery-detail", args=[self.gallery.code]),
            "api:gallery-photos": reverse("api:gallery-photos", args=[self.gallery.code]),
            "api:gallery-nist": reverse("api:gallery-nist", args=[self.gallery.code]),
            "api:token-list": reverse("api:token-list"),
            "api:token-revoke": reverse("api:token-revoke", args=[self.api_token.code]),
            "api:policy": reverse("api:policy"),
            "api:case-authorisations": reverse("api:case-authorisations", args=[case]),
            "api:authorisation-grant": reverse("api:authorisation-grant", args=[case]),
            "api:authorisation-refuse": reverse("api:authorisation-refuse", args=[case]),
            "api:watchlist-list": reverse("api:watchlist-list"),
        }


def _object_url_names(resolver=None, namespace="") -> set[str]:
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            names |= _object_url_names(entry, inner)
        elif isinstance(entry, URLPattern) and entry.pattern.converters:
            names.add(f"{namespace}{entry.name}")
    return names


class ScopingTests(PortalViewTestCase):
    # Reached by a secret token, without signing in, by design: invitation and password-reset links.
    PUBLIC_TOKEN_URLS = {"accounts:invitation-accept", "accounts:password-reset-confirm"}

    # The privacy officer's pages belong to no agency: agency users get 403 there (tests/search/test_privacy_pages.py).
    PLATFORM_URLS = {
        "privacy:request-detail",
        "privacy:request-search",
        "privacy:request-complete",
        "privacy:request-photo",
        "privacy:request-face",
        "privacy:request-export",
    }

    def test_every_object_url_is_in_the_matrix(self):
        # The API takes no session: its object URLs are in tests/api/test_api.py's scoping tests, with tokens.
        api = set(self.api_urls())
        self.assertEqual(
            _object_url_names() - self.PUBLIC_TOKEN_URLS - self.PLATFORM_URLS - api, set(self.object_urls())
        )

    def test_a_made_up_invitation_token_is_refused(self):
        response = self.client.get(reverse("accounts:invitation-accept", args=["made-up-token"]))
        self.assertContains(response, "not valid", status_code=410)

    # Reached by the agency's supervisors and admins only (an officer gets 403): the disclosure packet.
    SUPERVISOR_URLS = {"portal:case-disclosure"}

    def test_the_owning_agency_reaches_every_object(self):
        for name, (url, method) in self.object_urls().items():
            if method == "get":
                self.sign_in(self.bob if name in self.SUPERVISOR_URLS else self.alice)
                self.assertEqual(self.client.get(url).status_code, 200, name)

    def test_another_agency_gets_404_for_every_object_and_method(self):
        # dave is South's agency admin: the most a user of another agency can be.
        self.sign_in(self.dave)
        for name, (url, expected_method) in self.object_urls().items():
            for method in ("get", "post", "put", "patch", "delete"):
                response = getattr(self.client, method)(url)
                if method == expected_method:
                    self.assertEqual(response.status_code, 404, f"{method} {name}")
                else:
                    self.assertIn(response.status_code, (404, 405), f"{method} {name}")
        self.case.refresh_from_db()
        self.alice.refresh_from_db()
        self.assertEqual(self.case.status, Case.Status.OPEN)
        self.assertEqual((self.alice.is_active, self.alice.role), (True, "officer"))
        self.invitation.refresh_from_db()
        self.assertIsNone(self.invitation.revoked_at)

    def test_anonymous_users_are_sent_to_sign_in(self):
        for name, (url, method) in self.object_urls().items():
            response = getattr(self.client, method)(url)
            self.assertEqual(response.status_code, 302, name)
            self.assertTrue(response["Location"].startswith(reverse("accounts:login")), name)

    def test_images_are_private_and_not_sniffable(self):
        self.sign_in(self.alice)
        for name, (url, _) in self.object_urls().items():
            if "image" in name or "crop" in name or "photo" in name:
                response = self.client.get(url)
                self.assertEqual(response["Content-Type"], "image/jpeg", name)
                self.assertEqual(response["Cache-Control"], "private, no-store", name)
                self.assertEqual(response["X-Content-Type-Options"], "nosniff", name)

    def test_pages_carry_a_strict_content_security_policy(self):
        self.sign_in(self.alice)
        policy = self.client.get(reverse("portal:dashboard"))["Content-Security-Policy"]
        for directive in ("script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
            self.assertIn(directive, policy)
        self.assertNotIn("unsafe-inline", policy)


class PlatformUserTests(TestCase):
    def test_a_platform_user_is_told_that_cases_belong_to_agencies(self):
        from accounts.services import user_create

        staff = user_create(username="pat", password=PASSWORD, role="platform_staff")
        sign_in(self.client, staff)
        response = self.client.get(reverse("portal:dashboard"))
        self.assertContains(response, "Cases belong to agencies", status_code=403)


class DashboardAndCaseTests(PortalViewTestCase):
    def test_the_dashboard_lists_open_cases_and_recent_searches(self):
        self.sign_in(self.alice)
        response = self.client.get(reverse("portal:dashboard"))
        self.assertContains(response, "N-001")
        self.assertContains(response, "img5.jpg")

    def test_the_dashboard_shows_what_to_do_when_empty(self):
        self.sign_in(self.charlie)
        response = self.client.get(reverse("portal:dashboard"))
        self.assertContains(response, "No open case yet")
        self.assertContains(response, "No search yet")
        self.assertNotContains(response, "N-001")

    def test_the_case_list_filters(self):
        self.sign_in(self.alice)
        self.client.post(reverse("portal:case-create"), {"number": "N-002", "title": "Burglary"})
        response = self.client.get(reverse("portal:case-list"), {"title": "burgl"})
        self.assertContains(response, "N-002")
        self.assertNotContains(response, "N-001")
        response = self.client.get(reverse("portal:case-list"), {"number": "zzz"})
        self.assertContains(response, "No case matches these filters")

    def test_creating_a_case_twice_shows_the_error_next_to_the_field(self):
        self.sign_in(self.alice)
        response = self.client.post(reverse("portal:case-create"), {"number": "N-001", "title": "Again"})
        self.assertContains(response, "Case N-001 already exists in your agency.")
        response = self.client.post(reverse("portal:case-create"), {"number": "", "title": ""})
        self.assertContains(response, "This field is required.", count=2)
        self.assertEqual(Case.objects.filter(agency=self.north).count(), 1)

    def test_closing_and_reopening_a_case(self):
        self.sign_in(self.alice)
        self.client.post(reverse("portal:case-close", args=[self.case.code]), {"confirm": "yes"})
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, Case.Status.CLOSED)
        self.assertContains(
            self.client.get(reverse("portal:case-detail", args=[self.case.code])), "This case is closed"
        )
        self.assertEqual(self.client.get(reverse("portal:case-close", args=[self.case.code])).status_code, 405)
        self.client.post(reverse("portal:case-reopen", args=[self.case.code]))
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, Case.Status.OPEN)


class UploadTests(PortalViewTestCase):
    def upload(self, *files, follow=False, headers=None, **fields):
        from django.core.files.uploadedfile import SimpleUploadedFile

        payload = {
            "photos": [SimpleUploadedFile(name, data) for name, data in files],
            "purpose": "Robbery",
            "justification": "CCTV still of the robbery suspect at the station",
            **fields,
        }
        with self.captureOnCommitCallbacks(execute=False):
            return self.client.post(
                reverse("search:probe-upload", args=[self.case.code]), payload, follow=follow, headers=headers
            )

    def test_one_photo_leads_to_its_search_page(self):
        self.sign_in(self.alice)
        response = self.upload(("p.jpg", photo_bytes("img6.jpg")), purpose="Missing person")
        job = SearchJob.objects.exclude(pk=self.job.pk).get()
        self.assertRedirects(response, reverse("search:job-detail", args=[job.code]))
        self.assertEqual(job.offense_category.name, "Missing person")

    def test_the_page_script_is_told_where_to_go_instead_of_following_a_redirect(self):
        # The page's script posts the form; a redirect would make it load the search's page twice.
        self.sign_in(self.alice)
        response = self.upload(("p.jpg", photo_bytes("img6.jpg")), headers={"X-Upload-Script": "1"})
        job = SearchJob.objects.exclude(pk=self.job.pk).get()
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"next": reverse("search:job-detail", args=[job.code])})
        several = self.upload(
            ("a.jpg", photo_bytes("img6.jpg")), ("b.jpg", photo_bytes("img7.jpg")), headers={"X-Upload-Script": "1"}
        )
        self.assertEqual(several.json(), {"next": reverse("portal:case-detail", args=[self.case.code])})
        refused = self.upload(("p.jpg", b"not a photo"), headers={"X-Upload-Script": "1"})
        self.assertEqual(refused.status_code, 400)  # the page with the form's errors, as without the script
        self.assertIn("text/html", refused["Content-Type"])

    def test_the_purpose_and_a_real_justification_are_required(self):
        self.sign_in(self.alice)
        response = self.upload(("p.jpg", photo_bytes("img6.jpg")), purpose="", justification="because")
        self.assertContains(response, "State the purpose of the search.", status_code=400)
        self.assertContains(response, "Justify the search in at least 20 characters (you wrote 7).", status_code=400)
        self.assertEqual(SearchJob.objects.count(), 1)

    def test_several_photos_become_several_searches(self):
        self.sign_in(self.alice)
        response = self.upload(("a.jpg", photo_bytes("img6.jpg")), ("b.jpg", photo_bytes("img7.jpg")))
        self.assertRedirects(response, reverse("portal:case-detail", args=[self.case.code]))
        self.assertEqual(SearchJob.objects.count(), 3)

    def test_a_bad_photo_shows_the_reason_next_to_the_field_and_stores_nothing(self):
        self.sign_in(self.alice)
        response = self.upload(("notes.jpg", b"plain text, not a photo"))
        self.assertContains(response, "notes.jpg: The file is not an image", status_code=400)
        self.assertEqual(SearchJob.objects.count(), 1)

    def test_a_good_and_a_bad_photo_search_the_good_one_and_report_the_bad_one(self):
        self.sign_in(self.alice)
        response = self.upload(("good.jpg", photo_bytes("img6.jpg")), ("bad.gif", image_bytes("GIF")), follow=True)
        self.assertEqual(SearchJob.objects.count(), 2)
        self.assertContains(response, "bad.gif: Unsupported image format GIF")

    def test_no_file_is_a_form_error(self):
        self.sign_in(self.alice)
        response = self.upload()
        self.assertContains(response, "Choose at least one photo.", status_code=400)


class ResultPageTests(PortalViewTestCase):
    def test_the_results_show_the_candidates_side_by_side_with_the_banner(self):
        self.sign_in(self.alice)
        response = self.client.get(reverse("search:job-detail", args=[self.job.code]))
        self.assertContains(response, "Investigative leads, not identifications.")
        self.assertContains(response, reverse("search:probe-face-crop", args=[self.job.code, 1]))
        self.assertContains(response, reverse("search:face-crop", args=[self.face_image.code]))
        self.assertContains(response, '<p class="strength-label">Likely candidate')
        self.assertContains(response, "Police Act s.64")

    def test_each_face_gets_an_open_set_answer_with_the_threshold_and_the_gallery_size_it_was_set_for(self):
        self.sign_in(self.alice)
        response = self.client.get(reverse("search:job-detail", args=[self.job.code]))
        self.assertContains(response, 'data-decision="likely">Likely candidate')
        faces = self.job.thresholds["yunet-sface-int8"]["gallery_faces"]
        self.assertContains(response, f"was set for the {faces} gallery faces searched")
        self.assertContains(response, "the galleries are too small to add their own pairs")

    def test_a_stranger_gets_no_likely_candidate(self):
        self.sign_in(self.alice)
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img30.jpg"))
        pipeline.search_job_run(job_id=job.id)
        response = self.client.get(reverse("search:job-detail", args=[job.code]))
        self.assertContains(response, 'data-decision="none">No likely candidate')
        self.assertNotContains(response, 'data-likely="true"')

    def test_the_status_endpoint_reports_the_stage(self):
        self.sign_in(self.alice)
        status = self.client.get(reverse("search:job-status", args=[self.job.code])).json()
        self.assertEqual((status["status"], status["finished"], status["error"]), ("done", True, None))
        self.assertEqual([s["state"] for s in status["stages"]], ["done"] * 5)

    def test_a_queued_search_shows_its_progress_and_no_results_yet(self):
        self.sign_in(self.alice)
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img6.jpg"))
        response = self.client.get(reverse("search:job-detail", args=[job.code]))
        self.assertContains(response, 'data-finished="false"')
        self.assertNotContains(response, "face found")
        status = self.client.get(reverse("search:job-status", args=[job.code])).json()
        self.assertEqual([s["state"] for s in status["stages"]], ["current", "todo", "todo", "todo", "todo"])

    def test_a_failed_search_shows_its_reason(self):
        self.sign_in(self.alice)
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=image_bytes("PNG", size=(200, 200)))
        pipeline.search_job_run(job_id=job.id)
        response = self.client.get(reverse("search:job-detail", args=[job.code]))
        self.assertContains(response, "No face found in the photo.")

    def test_the_comparison_links_to_the_next_candidate_and_the_profile(self):
        self.sign_in(self.alice)
        response = self.client.get(reverse("search:candidate-compare", args=[self.job.code, 1, 1]))
        self.assertContains(response, reverse("search:candidate-compare", args=[self.job.code, 1, 2]))
        self.assertContains(response, reverse("search:profile-detail", args=[self.profile.code]))
        self.assertEqual(
            self.client.get(reverse("search:candidate-compare", args=[self.job.code, 1, 99])).status_code, 404
        )

    def test_the_profile_lists_its_faces_and_the_searches_that_returned_it(self):
        self.sign_in(self.alice)
        response = self.client.get(reverse("search:profile-detail", args=[self.profile.code]))
        self.assertContains(response, "Face images (2)")
        self.assertContains(response, "Case N-001, rank 1")
