"""A batch enrolment decides every photo as enrolling the photos one at a time does, on real photos: the same
faces enrolled with the same descriptors, boxes and quality, the same refusals with the same reasons (quality gate,
minor, duplicate, the tombstones of both engines), the same watch-list alerts and tombstone records. The batch
analyses on worker processes, describes only the face the gate weighs, checks its chunks with one query of each
kind and inserts them in one statement; the photo-by-photo path is the galleries page's."""

import io
import json
import os
import tempfile
from datetime import date

import numpy as np
from django.core.management import call_command
from django.test import TestCase, override_settings
from PIL import Image, ImageFilter
from tqdm import tqdm

from portal.models import AuditEntry
from search import index
from search.enrolment import (
    EnrolmentItem,
    EnrolmentSkipped,
    enrolment_analyse,
    enrolment_quality_gate,
    face_image_enrol,
    gallery_enrol_batch,
    profile_get_or_create,
    stored_image,
)
from search.faces import DLIB_RESNET, YUNET_SFACE, get_engine
from search.imaging import decode_photo
from search.management.commands.enroll_gallery import FacesRate
from search.models import FaceImage, Gallery, Tombstone, WatchlistAlert
from search.photo_faces import PhotoFaces, same_face
from search.watchlist import watchlist_decide, watchlist_propose
from tests.base import AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes
from tests.factories import gallery_make, job_make

# P02 erased under dlib only, P03 under SFace only: their other photos are refused, each by that engine alone.
P02_ERASED, P02_AGAIN = ["img28.jpg", "img42.jpg", "img43.jpg"], "img27.jpg"
P03_ERASED, P03_AGAIN = ["img47.jpg", "img48.jpg", "img49.jpg"], "img9.jpg"
WATCHED = "img2.jpg"  # P01's probe on the watch-list; img4.jpg (P01) then raises an alert


def described(data: bytes, engine: str) -> np.ndarray:
    """The descriptor the former enrolment made of a photo (every face found described, then the gate)."""
    return enrolment_quality_gate(PhotoFaces(decode_photo(data).image, get_engine(engine)).find()).embedding


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def two_people() -> bytes:
    """One person 800 px tall beside another 300 px tall: the main face enrols, with a note about the other."""
    main = Image.open(io.BytesIO(photo_bytes("img1.jpg"))).convert("RGB")
    small = Image.open(io.BytesIO(photo_bytes("img17.jpg"))).convert("RGB")
    main = main.resize((main.width * 800 // main.height, 800))
    small = small.resize((small.width * 300 // small.height, 300))
    canvas = Image.new("RGB", (main.width + small.width, 800), "white")
    canvas.paste(main, (0, 0))
    canvas.paste(small, (main.width, 500))
    return jpeg(canvas)


@override_settings(FACE_ENGINE=YUNET_SFACE)
class BatchAsOneByOneTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        # North searches an SFace gallery (without P01), so P01's probe finds no likely candidate and goes on the
        # watch-list with an SFace descriptor.
        gallery_make(owner=cls.north, name="North first", people={"P06": [faces_dir() / "img16.jpg"]})
        job = job_make(case=cls.case, uploaded_by=cls.alice, data=photo_bytes(WATCHED))
        entry = watchlist_propose(probe_face=job.probe.faces.get(index=1), user=cls.alice, note="robbery, no match")
        watchlist_decide(entry=entry, user=cls.bob, approve=True)
        Tombstone.objects.bulk_create(
            [Tombstone(engine=DLIB_RESNET, embedding=described(photo_bytes(n), DLIB_RESNET)) for n in P02_ERASED]
            + [Tombstone(engine=YUNET_SFACE, embedding=described(photo_bytes(n), YUNET_SFACE)) for n in P03_ERASED]
        )

    def folder(self, tmp: str) -> list[EnrolmentItem]:
        """The photos, in the order enroll_gallery reads them, and each photo's bytes written there."""
        photos = [
            ("P01", "img4.jpg", photo_bytes("img4.jpg")),
            ("P01", "img5.jpg", photo_bytes("img5.jpg")),
            ("Same photo", "img5-again.jpg", photo_bytes("img5.jpg")),  # a duplicate in the same chunk of 4
            ("P02", P02_AGAIN, photo_bytes(P02_AGAIN)),
            ("P03", P03_AGAIN, photo_bytes(P03_AGAIN)),
            ("Couple", "couple.jpg", photo_bytes("couple.jpg")),
            ("Two people", "two-people.jpg", two_people()),
            (
                "P05",
                "img17-blurred.jpg",
                jpeg(Image.open(io.BytesIO(photo_bytes("img17.jpg"))).filter(ImageFilter.GaussianBlur(8))),
            ),
            ("Nobody", "blank.png", image_bytes("PNG", size=(300, 300))),
            ("Nobody", "broken.jpg", b"\xff\xd8\xff\xe0 truncated"),
            ("Young", "img22.jpg", photo_bytes("img22.jpg")),
            ("P07", "img31.jpg", photo_bytes("img31.jpg")),
            ("P07", "img31-again.jpg", photo_bytes("img31.jpg")),  # a duplicate in the next chunk of 4
            ("P12", "img67.jpg", photo_bytes("img67.jpg")),
        ]
        items, self.photos = [], {}
        for person, name, data in photos:
            self.photos[name] = data
            os.makedirs(os.path.join(tmp, person), exist_ok=True)
            path = os.path.join(tmp, person, name)
            with open(path, "wb") as out:
                out.write(data)
            fields = {"date_of_birth": date(date.today().year - 15, 1, 1)} if person == "Young" else {}
            items.append(EnrolmentItem(path=path, display_name=person, profile_fields=fields, source_name=name))
        return items

    def gallery(self, name: str) -> Gallery:
        return gallery_make(owner=self.north, name=name)

    def one_by_one(self, gallery: Gallery, items: list[EnrolmentItem]) -> dict:
        outcomes = {}
        for item in items:
            profile = profile_get_or_create(gallery=gallery, display_name=item.display_name, **item.profile_fields)
            with open(item.path, "rb") as photo:
                data = photo.read()
            try:
                result = face_image_enrol(profile=profile, data=data, source_name=item.source_name)
            except EnrolmentSkipped as exc:
                outcomes[item.source_name] = (exc.code, str(exc))
            else:
                outcomes[item.source_name] = ("enrolled", result.notes)
        return outcomes

    @staticmethod
    def faces(gallery: Gallery) -> dict:
        return {
            face.source_name: face for face in FaceImage.objects.filter(gallery=gallery).select_related("descriptor")
        }

    @staticmethod
    def tombstone_records() -> list[dict]:
        return [
            entry.data for entry in AuditEntry.objects.filter(action=AuditEntry.Action.TOMBSTONE_HIT).order_by("id")
        ]

    def test_a_batch_decides_every_photo_as_one_by_one_enrolment_does(self):
        with tempfile.TemporaryDirectory() as tmp:
            items = self.folder(tmp)
            batch_gallery = self.gallery("Batch")
            stored = []
            summary = gallery_enrol_batch(
                gallery=batch_gallery,
                gallery_created=True,
                items=items,
                workers=2,
                chunk_size=4,  # chunks of 4: a duplicate within a chunk, and one across chunks
                progress=lambda item: stored.append((item.source_name, item.outcome)),
            )
            batch_records = self.tombstone_records()
            reference_gallery = self.gallery("One by one")
            reference = self.one_by_one(reference_gallery, items)
        reference_records = self.tombstone_records()[len(batch_records) :]
        batch = {
            **{s["file"].rsplit("/", 1)[1]: (s["code"], s["reason"]) for s in summary.skipped},
            **{name: ("enrolled", []) for name in self.faces(batch_gallery)},
        }
        for note in summary.notes:
            batch[note["file"].rsplit("/", 1)[1]][1].append(note["note"])

        # Every rule had its say, and the batch said the same as the one-by-one path, reason for reason.
        codes = sorted(code for code, _ in reference.values())
        self.assertEqual(
            codes,
            sorted(
                ["enrolled"] * 5
                + ["ambiguous", "blurred", "no_face", "unreadable", "minor", "duplicate", "duplicate"]
                + ["tombstone"] * 2
            ),
        )
        self.assertEqual(batch, reference)
        self.assertEqual(stored, [(item.source_name, batch[item.source_name][0]) for item in items])
        self.assertEqual(
            reference["two-people.jpg"][1],
            ["2 faces in the photo; the largest was enrolled (1 much smaller background face(s) left out)."],
        )

        # The same faces: boxes, landmarks, quality and descriptors, bit for bit, and the descriptor is the one the
        # former enrolment made (every face in the photo described, then the gate).
        batch_faces, reference_faces = self.faces(batch_gallery), self.faces(reference_gallery)
        for name, face in batch_faces.items():
            twin = reference_faces[name]
            self.assertEqual((face.box, face.landmarks, face.quality), (twin.box, twin.landmarks, twin.quality))
            self.assertEqual((face.content_hash, face.minor_at_enrolment), (twin.content_hash, False))
            self.assertTrue(
                np.array_equal(np.asarray(face.descriptor.embedding), np.asarray(twin.descriptor.embedding))
            )
            former = described(self.photos[name], YUNET_SFACE)
            # (Read back from the database as float64: the float32 it stored, exactly.)
            self.assertTrue(np.array_equal(np.asarray(face.descriptor.embedding, dtype=np.float32), former), name)

        # Refused by the engine that holds the erased face: SFace for P03, dlib for P02 (the photo described by
        # dlib on a worker process, at the distance the former check found).
        self.assertEqual(batch_records, reference_records)
        by_engine = {record["engine"]: record for record in batch_records}
        self.assertEqual(sorted(by_engine), [DLIB_RESNET, YUNET_SFACE])
        analysed = enrolment_analyse(photo_bytes(P02_AGAIN), YUNET_SFACE)
        former_dlib = same_face(
            analysed.box, PhotoFaces(stored_image(analysed.image_jpeg), get_engine(DLIB_RESNET)).find()
        )
        nearest = index.nearest_tombstone(former_dlib.embedding, engine=DLIB_RESNET)
        self.assertAlmostEqual(by_engine[DLIB_RESNET]["distance"], nearest.distance, places=4)
        self.assertLessEqual(by_engine[DLIB_RESNET]["distance"], by_engine[DLIB_RESNET]["threshold"]["distance"])

        # The watch-list: the same alerts in each gallery (P01's img4 among them), at the same distances.
        alerts = {batch_gallery.id: [], reference_gallery.id: []}
        for alert in WatchlistAlert.objects.select_related("face_image").order_by("id"):
            alerts[alert.face_image.gallery_id].append((alert.face_image.source_name, round(alert.distance, 6)))
        self.assertIn("img4.jpg", [name for name, _ in alerts[batch_gallery.id]])
        self.assertEqual(alerts[batch_gallery.id], alerts[reference_gallery.id])

        # What the batch measured: every stage of the analysis and of storing.
        self.assertGreater(summary.seconds, 0)
        self.assertLessEqual(
            {"analysis.decode", "analysis.detect", "analysis.embed", "analysis.other_engines", "store.insert"},
            set(summary.stage_seconds),
        )


class ProgressRateTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_the_progress_bar_shows_faces_per_second(self):
        out = io.StringIO()
        with tqdm(total=3, file=out, mininterval=0) as bar:
            rate = FacesRate(bar)
            for outcome in ("enrolled", "ambiguous", "enrolled"):
                rate(EnrolmentItem(path="x.jpg", display_name="X", outcome=outcome))
        self.assertEqual(rate.faces, 2)
        self.assertRegex(out.getvalue(), r"3/3 .*2 faces, \d+\.\d faces/s")

    def test_enroll_gallery_json_says_how_long_it_took(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "Alex"))
            for name in ("img1.jpg", "img2.jpg"):
                os.symlink(faces_dir() / name, os.path.join(tmp, "Alex", name))
            out = io.StringIO()
            call_command(
                "enroll_gallery", tmp, "--agency", "north", "--gallery", "Bookings", "--legal-basis", "Act",
                "--source-type", "booking", "--responsible", "Unit", "--retention-days", "30", "--workers", "1",
                "--json", stdout=out, stderr=io.StringIO(),
            )  # fmt: skip
        result = json.loads(out.getvalue())
        self.assertEqual(result["faces_enrolled"], 2)
        self.assertGreater(result["seconds"], 0)
        self.assertAlmostEqual(result["faces_per_second"], 2 / result["seconds"], delta=0.1)
        self.assertGreater(result["stage_seconds"]["analysis.detect"], 0)
        self.assertGreater(result["stage_seconds"]["store.insert"], 0)
