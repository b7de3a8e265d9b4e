"""Tombstones hold across engines, and a data-subject request acts on likely matches only.

An erasure describes each erased face with every installed engine, so a photo of the person is refused
whatever engine a gallery enrols it with later; each engine decides as a search does (its nearest erased
face against its threshold for that many erased faces), so a different person enrols. A request photo is
searched with the engine of every gallery; only the matches the decision calls likely can be released or
erased, and the command lists the others."""

import io
import json

import numpy as np
from django.core.management import call_command
from django.test import TestCase, override_settings

from accounts.services import user_create
from portal.models import AuditEntry
from search import index
from search.calibration import deployment_threshold, tombstone_threshold
from search.enrolment import EnrolmentSkipped, enrolment_quality_gate, face_image_enrol, profile_get_or_create
from search.faces import DLIB_RESNET, YUNET_SFACE, engine_distance, engine_threshold, get_engine
from search.imaging import decode_photo
from search.models import FaceImage, Gallery, Profile, SubjectRequest, Tombstone
from search.open_set import LIKELY, NONE
from search.photo_faces import PhotoFaces
from search.subject_requests import (
    RequestRefused,
    erasure_register_read,
    subject_request_complete,
    subject_request_file,
)
from tests.base import PASSWORD, AgencyFixtureMixin, faces_dir, photo_bytes
from tests.factories import gallery_make

# P02: three photos enrolled and erased, one to file the request with, one to try to enrol again.
P02_ENROLLED, P02_REQUEST, P02_AGAIN = ["img28.jpg", "img42.jpg", "img43.jpg"], "img26.jpg", "img27.jpg"
# P01 and then P03 are erased; P12's img22 is the different person closest to any of P03's photos under SFace
# (0.597 from img49, under SFace's fixed bound 0.637): closer than any other pair of different people but P07/P08.
P01_ENROLLED = [
    "img1.jpg",
    "img10.jpg",
    "img11.jpg",
    "img11_reflection.jpg",
    "img2.jpg",
    "img4.jpg",
    "img5.jpg",
    "img6.jpg",
]
P01_REQUEST = "img7.jpg"
P03_ENROLLED, P03_REQUEST = ["img47.jpg", "img48.jpg", "img49.jpg", "img50.jpg", "img51.jpg", "img8.jpg"], "img9.jpg"
P12_PHOTO = "img22.jpg"
# P07 files a request; P08 (img35) is the different person nearest to P07's img31 in both engines.
P07_REQUEST = "img31.jpg"


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def described(photo: str, engine: str) -> np.ndarray:
    """The descriptor enrolment would make of the photo's face with that engine."""
    image = decode_photo(photo_bytes(photo)).image
    return enrolment_quality_gate(PhotoFaces(image, get_engine(engine)).find()).embedding


def paths(names: list[str]) -> list:
    return [faces_dir() / name for name in names]


class TombstoneFixture(AgencyFixtureMixin):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.privacy = user_create(username="priya", password=PASSWORD, role="privacy_officer")

    def erase(self, *, engine: str, enrolled: list[str], request_photo: str) -> dict:
        """Enrol the person into a gallery of that engine, then erase them at their request (--approve-all)."""
        with override_settings(FACE_ENGINE=engine):
            gallery = gallery_make(owner=self.north, name=f"North {engine}", people={"The person": paths(enrolled)})
        self.assertEqual((gallery.engine, gallery.face_images.count()), (engine, len(enrolled)))
        request = subject_request_file(kind="erasure", data=photo_bytes(request_photo), contact="me@example.org")
        with self.captureOnCommitCallbacks(execute=True):
            result = run("process_request", request.reference, "--user", "priya", "--approve-all", "--json")
        self.assertEqual([p["profile"] for p in result["erased_profiles"]], ["The person"])
        self.assertEqual(result["not_approved"], [])
        return result

    def gallery_of(self, engine: str, name: str = "South wanted") -> Gallery:
        with override_settings(FACE_ENGINE=engine):
            return gallery_make(owner=self.south, name=name)


class TombstonesAcrossEnginesTests(TombstoneFixture, TestCase):
    def assert_refused_by(self, engine: str, *, gallery: Gallery, photo: str) -> dict:
        """Enrolling the photo is refused by a tombstone of that engine; the decision's figures, checked."""
        profile = profile_get_or_create(gallery=gallery, display_name="Enrolled again")
        with self.assertRaises(EnrolmentSkipped) as refused:
            face_image_enrol(profile=profile, data=photo_bytes(photo), source_name="again.jpg")
        self.assertEqual(refused.exception.code, "tombstone")
        hit = AuditEntry.objects.filter(action=AuditEntry.Action.TOMBSTONE_HIT).latest("id")
        decision = hit.data
        threshold = tombstone_threshold(engine=engine)
        # The one decision: that engine's nearest erased face, at or under its threshold for that many.
        self.assertEqual((decision["decision"], decision["engine"]), (LIKELY, engine))
        self.assertEqual(decision["threshold"]["distance"], threshold.distance)
        self.assertEqual(decision["threshold"]["gallery_faces"], Tombstone.objects.filter(engine=engine).count())
        nearest = index.nearest_tombstone(described(photo, engine), engine=engine).distance
        self.assertAlmostEqual(decision["distance"], nearest, places=4)
        self.assertLessEqual(decision["distance"], threshold.distance)
        words = (
            f"{engine}: distance {decision['distance']:.3f} under the likely-match threshold {threshold.distance:.3f}"
        )
        self.assertIn(words, str(refused.exception))
        self.assertIn(words, hit.detail)
        self.assertFalse(profile.face_images.exists())
        return decision

    def test_a_person_erased_under_dlib_is_refused_by_a_yunet_sface_gallery(self):
        erased = self.erase(engine=DLIB_RESNET, enrolled=P02_ENROLLED, request_photo=P02_REQUEST)
        # Each erased face left one tombstone per engine, though no SFace descriptor of them was ever stored.
        self.assertEqual(Tombstone.objects.filter(engine=DLIB_RESNET).count(), 3)
        self.assertEqual(Tombstone.objects.filter(engine=YUNET_SFACE).count(), 3)
        self.assertFalse(FaceImage.objects.filter(engine=YUNET_SFACE).exists())
        # The erasure register holds them too (a restore re-creates them), told apart by the face they describe.
        [line] = [line for line in erasure_register_read() if line["reference"] == erased["reference"]]
        faces = {}
        for tombstone in line["tombstones"]:
            faces.setdefault(tombstone["face"], set()).add(tombstone["engine"])
        self.assertEqual(list(faces.values()), [{DLIB_RESNET, YUNET_SFACE}] * 3)

        decision = self.assert_refused_by(YUNET_SFACE, gallery=self.gallery_of(YUNET_SFACE), photo=P02_AGAIN)
        self.assertLess(decision["distance"], 0.5)

    def test_a_person_erased_under_yunet_sface_is_refused_by_a_dlib_gallery(self):
        self.erase(engine=YUNET_SFACE, enrolled=P02_ENROLLED, request_photo=P02_REQUEST)
        self.assertEqual(Tombstone.objects.filter(engine=YUNET_SFACE).count(), 3)
        self.assertEqual(Tombstone.objects.filter(engine=DLIB_RESNET).count(), 3)
        self.assertFalse(FaceImage.objects.filter(engine=DLIB_RESNET).exists())

        decision = self.assert_refused_by(DLIB_RESNET, gallery=self.gallery_of(DLIB_RESNET), photo=P02_AGAIN)
        self.assertLess(decision["distance"], 0.5)

    def test_a_different_person_close_to_the_erased_one_enrols(self):
        # Two people erased, under both engines: 14 erased faces, each with its tombstone of each engine. (The
        # threshold is set for that many: with fewer erased faces it is looser, and nearer SFace's fixed bound.)
        self.erase(engine=DLIB_RESNET, enrolled=P01_ENROLLED, request_photo=P01_REQUEST)
        self.erase(engine=YUNET_SFACE, enrolled=P03_ENROLLED, request_photo=P03_REQUEST)
        erased = len(P01_ENROLLED) + len(P03_ENROLLED)
        self.assertEqual(Tombstone.objects.filter(engine=YUNET_SFACE).count(), erased)
        self.assertEqual(Tombstone.objects.filter(engine=DLIB_RESNET).count(), erased)
        gallery = self.gallery_of(YUNET_SFACE)
        profile = profile_get_or_create(gallery=gallery, display_name="P12")
        face = face_image_enrol(profile=profile, data=photo_bytes(P12_PHOTO), source_name="p12.jpg").face_image
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.TOMBSTONE_HIT).exists())
        # Under SFace the nearest erased face is closer than the engine's fixed bound (the rule before the
        # calibrated decision refused this photo) but over the threshold for this many erased faces.
        sface = index.nearest_tombstone(face.descriptor.embedding, engine=YUNET_SFACE).distance
        sface_threshold = tombstone_threshold(engine=YUNET_SFACE).distance
        self.assertGreater(sface, sface_threshold)
        self.assertLess(sface, engine_threshold(YUNET_SFACE))
        # dlib's tombstones of P03 were checked too (describing the photo with dlib): further still.
        dlib = index.nearest_tombstone(described(P12_PHOTO, DLIB_RESNET), engine=DLIB_RESNET).distance
        self.assertGreater(dlib, tombstone_threshold(engine=DLIB_RESNET).distance)
        self.assertGreater(dlib, engine_threshold(DLIB_RESNET))
        # The erased person themself, in the photo they filed the request with, is still refused.
        decision = self.assert_refused_by(YUNET_SFACE, gallery=gallery, photo=P03_REQUEST)
        self.assertLess(decision["distance"], sface - 0.2)


class RequestDecisionTests(TombstoneFixture, TestCase):
    """P07 asks; their profiles sit in an SFace and a dlib gallery, and P08, who resembles them, in the SFace one."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        strangers = ["img1.jpg", "img13.jpg", "img16.jpg", "img38.jpg", "img18.jpg", "img20.jpg"]  # six people
        gallery_make(
            owner=cls.north,
            name="North bookings",
            people={
                "Matt": paths(["img29.jpg", "img30.jpg"]),
                "Leo": paths(["img35.jpg", "img36.jpg"]),
                **{f"Stranger {n}": paths([name]) for n, name in enumerate(strangers)},
            },
        )
        with override_settings(FACE_ENGINE=DLIB_RESNET):
            gallery_make(
                owner=cls.south,
                name="South wanted",
                people={"M. Damon": paths(["img32.jpg", "img33.jpg"]), "Other": paths(["img53.jpg", "img54.jpg"])},
            )

    def file(self, kind: str) -> SubjectRequest:
        return subject_request_file(kind=kind, data=photo_bytes(P07_REQUEST), contact="matt@example.org")

    def test_only_the_requesters_profiles_are_likely_and_the_resemblance_is_not_approvable(self):
        request = self.file("access")
        result = run("process_request", request.reference, "--user", "priya", "--json")
        matches = {m["profile"]: m for m in result["matches"]}
        self.assertEqual(sorted(matches), ["Leo", "M. Damon", "Matt"])
        # Each engine's threshold is the one for every face of that engine in the deployment.
        for engine, faces in ((YUNET_SFACE, 10), (DLIB_RESNET, 4)):
            threshold = deployment_threshold(engine=engine)
            self.assertEqual(threshold.gallery_faces, faces)
            for match in (m for m in matches.values() if m["engine"] == engine):
                self.assertEqual(match["threshold"], threshold.distance)
        self.assertEqual((matches["Matt"]["engine"], matches["M. Damon"]["engine"]), (YUNET_SFACE, DLIB_RESNET))
        for name in ("Matt", "M. Damon"):
            self.assertEqual(matches[name]["decision"], LIKELY)
            self.assertLess(matches[name]["distance"], matches[name]["threshold"] - 0.1)
        # Leo resembles them: within SFace's fixed bound (listed for the officer), over the calibrated threshold.
        leo = matches["Leo"]
        self.assertEqual((leo["decision"], leo["engine"]), (NONE, YUNET_SFACE))
        self.assertGreater(leo["distance"], leo["threshold"])
        self.assertLessEqual(leo["distance"], engine_threshold(YUNET_SFACE))
        # (The request's photo is searched as stored, a re-encode: its descriptor moves by a few thousandths.)
        self.assertAlmostEqual(
            leo["distance"],
            engine_distance(YUNET_SFACE, described(P07_REQUEST, YUNET_SFACE), described("img35.jpg", YUNET_SFACE)),
            places=2,
        )
        # Leo is released neither alone nor with the likely ones; the refusal names the decision.
        request.refresh_from_db()
        for profile_ids in ([leo["profile_id"]], [matches["Matt"]["profile_id"], leo["profile_id"]]):
            with self.assertRaisesMessage(
                RequestRefused,
                f"Leo (North bookings, North Police): No likely candidate ({YUNET_SFACE}: distance "
                f"{leo['distance']:.3f} over the likely-match threshold {leo['threshold']:.3f})",
            ):
                subject_request_complete(
                    request=request, user=self.privacy, profile_ids=profile_ids, identity_note="Passport"
                )
        request.refresh_from_db()
        self.assertEqual((request.status, request.export.name), ("received", ""))
        search = AuditEntry.objects.filter(action=AuditEntry.Action.SUBJECT_SEARCH).latest("id")
        self.assertEqual(
            sorted(search.data["likely_profile_ids"]),
            sorted([matches["Matt"]["profile_id"], matches["M. Damon"]["profile_id"]]),
        )

    def test_approve_all_erases_only_the_likely_matches_and_lists_the_others(self):
        request = self.file("erasure")
        leo = Profile.objects.get(display_name="Leo")
        with self.captureOnCommitCallbacks(execute=True):
            result = run("process_request", request.reference, "--user", "priya", "--approve-all", "--json")
        self.assertEqual(sorted(p["profile"] for p in result["erased_profiles"]), ["M. Damon", "Matt"])
        self.assertEqual(result["files_removed"], 8)  # 4 photos, each with its crop
        self.assertEqual([(m["profile"], m["decision"]) for m in result["not_approved"]], [("Leo", NONE)])
        self.assertIn("No likely candidate", result["not_approved"][0]["decision_words"])
        # Leo keeps everything; the two profiles of the requester are gone, with a tombstone per face and engine.
        self.assertEqual(FaceImage.objects.filter(profile=leo).count(), 2)
        self.assertFalse(Profile.objects.filter(display_name__in=["Matt", "M. Damon"]).exists())
        self.assertEqual(Profile.objects.count(), 1 + 6 + 1)
        self.assertEqual(Tombstone.objects.filter(engine=YUNET_SFACE).count(), 4)
        self.assertEqual(Tombstone.objects.filter(engine=DLIB_RESNET).count(), 4)
        request.refresh_from_db()
        self.assertEqual(sorted(p["profile"] for p in request.outcome["erased_profiles"]), ["M. Damon", "Matt"])
