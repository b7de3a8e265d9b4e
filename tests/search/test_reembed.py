"""Re-embedding a gallery with the second engine: resumable, searchable throughout, one switch."""

import contextlib
import io

from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from portal.models import AuditEntry
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import FaceImage, Gallery
from search.reembed import galleries_reembed, gallery_reembed
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, photo_bytes
from tests.factories import gallery_make

DLIB = "dlib-resnet-v1"
SFACE = "yunet-sface-int8"


class Interrupted(Exception):
    pass


class ReembedTests(AgencyFixtureMixin, TestCase):
    @classmethod
    @override_settings(FACE_ENGINE=DLIB)  # the gallery's engine, whatever the deployment's default
    def setUpTestData(cls):
        cls.create_agencies()
        cls.gallery, _ = gallery_get_or_create(
            owner=cls.north, name="Bookings", legal_basis="Act", **GALLERY_PROVENANCE
        )
        gallery_enrol_batch(
            gallery=cls.gallery,
            gallery_created=True,
            items=[
                EnrolmentItem(path=str(faces_dir() / name), display_name=who)
                for name, who in (("img1.jpg", "P01"), ("img2.jpg", "P01"), ("img16.jpg", "P02"), ("img22.jpg", "P03"))
            ],
        )

    def search_first(self) -> tuple[str, str]:
        """Search a P01 photo not in the gallery with probes described by the second engine."""
        with override_settings(FACE_ENGINE=SFACE), self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img4.jpg"))
        pipeline.search_job_run(job_id=job.id)
        first = job.candidates.get(rank=1)
        return first.profile.display_name, first.engine

    def test_the_gallery_stays_searchable_with_its_old_engine_until_the_switch(self):
        self.assertEqual(self.search_first(), ("P01", "dlib-resnet-v1"))  # another engine's gallery is found too

        calls = []

        def stop_after_two(face):
            calls.append(face)
            if len(calls) == 2:
                raise Interrupted

        with self.assertRaises(Interrupted):
            gallery_reembed(gallery=self.gallery, engine_name=SFACE, progress=stop_after_two)
        self.gallery.refresh_from_db()
        self.assertEqual(self.gallery.engine, "dlib-resnet-v1")
        self.assertEqual(FaceImage.objects.filter(gallery=self.gallery, engine=SFACE).count(), 2)
        self.assertEqual(self.search_first(), ("P01", "dlib-resnet-v1"))  # mid-way: the complete set is used

        out = io.StringIO()
        call_command("reembed", "--gallery", "Bookings", "--engine", SFACE, stdout=out, stderr=io.StringIO())
        self.assertIn("2 described now, 2 before", out.getvalue())
        self.gallery.refresh_from_db()
        self.assertEqual(self.gallery.engine, SFACE)
        self.assertEqual(self.search_first(), ("P01", SFACE))
        self.assertTrue(AuditEntry.objects.filter(action="gallery_reembedded").exists())

    def test_an_engine_that_is_not_installed_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "Unknown face engine 'facenet'"):
            call_command("reembed", "--gallery", "Bookings", "--engine", "facenet", stderr=io.StringIO())
        self.assertEqual(Gallery.objects.get(pk=self.gallery.pk).engine, "dlib-resnet-v1")


def run_reembed(*args) -> tuple[list[str], str]:
    """`manage.py reembed ARGS`: the lines it printed, and its progress bar (tqdm writes to sys.stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        call_command("reembed", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines(), err.getvalue()


class ReembedAllTests(AgencyFixtureMixin, TestCase):
    """`reembed --all`: every gallery of the deployment, one after the other, each switching when complete."""

    @classmethod
    @override_settings(FACE_ENGINE=DLIB)  # both galleries on dlib, whatever the deployment's default
    def setUpTestData(cls):
        cls.create_agencies()
        cls.bookings = gallery_make(
            owner=cls.north,
            name="Bookings",
            people={"P01": [faces_dir() / "img1.jpg", faces_dir() / "img2.jpg"], "P02": [faces_dir() / "img16.jpg"]},
        )
        cls.custody = gallery_make(
            owner=cls.north,
            name="Custody",
            people={"P01": [faces_dir() / "img10.jpg"], "P03": [faces_dir() / "img22.jpg"]},
        )

    def setUp(self):
        # The fixture as the tests rely on it: 3 + 2 photos, all described by dlib only.
        self.assertEqual(self.engines(), {"Bookings": DLIB, "Custody": DLIB})
        self.assertEqual(self.descriptors(DLIB), {"Bookings": 3, "Custody": 2})
        self.assertEqual(self.descriptors(SFACE), {})

    def engines(self) -> dict[str, str]:
        return dict(Gallery.objects.values_list("name", "engine"))

    def descriptors(self, engine: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in FaceImage.objects.filter(engine=engine).values_list("gallery__name", flat=True):
            counts[name] = counts.get(name, 0) + 1
        return counts

    def photos_without(self, engine: str) -> list[str]:
        """Photos (source names) that have a descriptor of some engine but none of this one."""
        described = set(FaceImage.objects.filter(engine=engine).values_list("gallery_id", "content_hash"))
        return sorted(
            face.source_name
            for face in FaceImage.objects.exclude(engine=engine)
            if (face.gallery_id, face.content_hash) not in described
        )

    def p01_found(self) -> set[tuple[str, str]]:
        """Search a P01 photo in neither gallery: (gallery, engine) of each P01 found; P01 must rank first."""
        with override_settings(FACE_ENGINE=SFACE), self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img4.jpg"))
        pipeline.search_job_run(job_id=job.id)
        self.assertEqual(job.candidates.get(rank=1).profile.display_name, "P01")
        return {
            (c.profile.gallery.name, c.engine)
            for c in job.candidates.select_related("profile__gallery").filter(profile__display_name="P01")
        }

    def test_all_switches_every_gallery_and_a_second_run_does_nothing(self):
        self.assertEqual(self.p01_found(), {("Bookings", DLIB), ("Custody", DLIB)})

        lines, bar = run_reembed("--all", "--engine", SFACE)
        self.assertEqual(
            lines,
            [
                f"Bookings (north): 3 described now, 0 before, 0 without a face for {SFACE}.",
                f"Custody (north): 2 described now, 0 before, 0 without a face for {SFACE}.",
                f"2 of 2 galleries are searched with {SFACE}: 2 switched now, 0 before; 0 keep their old engine.",
            ],
        )
        # One bar over the pending faces of both galleries.
        self.assertIn("0/5", bar)
        self.assertIn("5/5", bar)
        self.assertEqual(self.engines(), {"Bookings": SFACE, "Custody": SFACE})
        self.assertEqual(self.descriptors(SFACE), {"Bookings": 3, "Custody": 2})
        self.assertEqual(self.photos_without(SFACE), [])
        self.assertEqual(self.descriptors(DLIB), {"Bookings": 3, "Custody": 2})  # the old ones stay beside
        self.assertEqual(self.p01_found(), {("Bookings", SFACE), ("Custody", SFACE)})
        switches = AuditEntry.objects.filter(action=AuditEntry.Action.GALLERY_REEMBEDDED)
        self.assertEqual(
            sorted(switches.values_list("detail", flat=True)),
            [f"Bookings: {DLIB} → {SFACE}", f"Custody: {DLIB} → {SFACE}"],
        )

        lines, bar = run_reembed("--all", "--engine", SFACE)
        self.assertEqual(
            lines,
            [
                f"Bookings (north) is already searched with {SFACE}.",
                f"Custody (north) is already searched with {SFACE}.",
                f"2 of 2 galleries are searched with {SFACE}: 0 switched now, 2 before; 0 keep their old engine.",
            ],
        )
        self.assertIn(": 0face ", bar)  # tqdm with nothing to do
        self.assertEqual(self.descriptors(SFACE), {"Bookings": 3, "Custody": 2})
        self.assertEqual(switches.count(), 2)

    def test_an_interrupted_run_leaves_every_gallery_searchable_and_the_next_does_only_what_is_left(self):
        described = []

        def stop_at_the_fourth(face):
            described.append(face.source_name)
            if len(described) == 4:
                raise Interrupted

        with self.assertRaises(Interrupted):
            galleries_reembed(engine_name=SFACE, progress=stop_at_the_fourth)
        # Bookings (the lower id) was complete and switched; Custody has one of its two photos described.
        self.assertEqual(self.engines(), {"Bookings": SFACE, "Custody": DLIB})
        self.assertEqual(self.descriptors(SFACE), {"Bookings": 3, "Custody": 1})
        self.assertEqual(self.p01_found(), {("Bookings", SFACE), ("Custody", DLIB)})

        lines, bar = run_reembed("--all", "--engine", SFACE)
        self.assertEqual(
            lines,
            [
                f"Bookings (north) is already searched with {SFACE}.",
                f"Custody (north): 1 described now, 1 before, 0 without a face for {SFACE}.",
                f"2 of 2 galleries are searched with {SFACE}: 1 switched now, 1 before; 0 keep their old engine.",
            ],
        )
        self.assertIn("0/1", bar)  # only Custody's last photo was left
        self.assertEqual(self.engines(), {"Bookings": SFACE, "Custody": SFACE})
        self.assertEqual(self.descriptors(SFACE), {"Bookings": 3, "Custody": 2})
        self.assertEqual(self.photos_without(SFACE), [])
        self.assertEqual(self.p01_found(), {("Bookings", SFACE), ("Custody", SFACE)})

    def test_a_gallery_that_cannot_switch_keeps_its_engine_is_named_and_the_others_switch(self):
        # Custody's P03 photo recorded with a box where the new engine finds no face.
        FaceImage.objects.filter(gallery=self.custody, source_name="img22.jpg").update(box=[0, 0, 8, 8])

        with self.assertRaisesMessage(CommandError, f"these keep their old engine: Custody (north, {DLIB}).") as raised:
            run_reembed("--all", "--engine", SFACE)
        self.assertNotIn("Bookings", str(raised.exception))
        self.assertEqual(self.engines(), {"Bookings": SFACE, "Custody": DLIB})
        self.assertEqual(self.descriptors(SFACE), {"Bookings": 3, "Custody": 1})
        self.assertEqual(self.photos_without(SFACE), ["img22.jpg"])
        self.assertEqual(self.p01_found(), {("Bookings", SFACE), ("Custody", DLIB)})

    def test_the_output_names_each_gallery_and_its_skipped_photos(self):
        FaceImage.objects.filter(gallery=self.custody, source_name="img22.jpg").update(box=[0, 0, 8, 8])
        out = io.StringIO()
        with self.assertRaises(CommandError):
            call_command("reembed", "--all", "--engine", SFACE, stdout=out, stderr=io.StringIO())
        self.assertEqual(
            out.getvalue().splitlines(),
            [
                f"Bookings (north): 3 described now, 0 before, 0 without a face for {SFACE}.",
                f"Custody (north): 1 described now, 0 before, 1 without a face for {SFACE}.",
                f"  skipped img22.jpg: {SFACE} finds no matching face",
                f"1 of 2 galleries are searched with {SFACE}: 1 switched now, 0 before; 1 keep their old engine.",
            ],
        )

    def test_all_and_gallery_together_or_neither_are_refused(self):
        for args, message in (
            (["--all", "--gallery", "Bookings"], "(not both)"),
            ([], "Name one gallery with --gallery NAME, or move every gallery with --all"),
            (["--all", "--agency", "north"], "--agency names the owner of a --gallery"),
        ):
            with self.subTest(args=args), self.assertRaisesMessage(CommandError, message):
                run_reembed(*args, "--engine", SFACE)
        self.assertEqual(self.engines(), {"Bookings": DLIB, "Custody": DLIB})
        self.assertEqual(self.descriptors(SFACE), {})

    def test_an_engine_that_is_not_installed_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "Unknown face engine 'facenet'"):
            run_reembed("--all", "--engine", "facenet")
        self.assertEqual(self.engines(), {"Bookings": DLIB, "Custody": DLIB})
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.GALLERY_REEMBEDDED).exists())
