"""Decoding the whole hostile corpus, and photos at the 40 MP limit, stays under 1.5 GiB of address space.

Enforced, not watched: the decoding runs in a child process whose address space is capped with
RLIMIT_AS before Python starts (decode_under_limit.py), with the face models loaded as in a worker.
An allocation past the cap fails there; the test wants a clean exit with every file refused or
accepted as the corpus says.

The cap is on address space, not resident memory: the default engine's OpenCV runtime reserves about
0.7 GB of address space when its models load (0.22 GB resident), dlib's about 0.25 GB.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase
from PIL import Image

from tests.base import faces_dir
from tests.security.corpus import BIG_CASES, HOSTILE_CASES

GIB = 1024**3
CAP = GIB * 3 // 2
FACE_PHOTO = "img10.jpg"


def decode_in_child(folder: Path, address_space_bytes: int) -> subprocess.CompletedProcess:
    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))

    limits = {
        name: getattr(settings, name)
        for name in (
            "UPLOAD_MAX_BYTES",
            "UPLOAD_MAX_PIXELS",
            "FACE_ENGINE",
            "FACE_DETECT_MAX_SIDE",
            "FACE_DETECT_UPSAMPLE",
            "FACE_MATCH_THRESHOLD",
            "SFACE_MATCH_THRESHOLD",
            "YUNET_SCORE_THRESHOLD",
            "QUALITY_MIN_EYE_DISTANCE_PX",
            "SFACE_QUALITY_MIN_SHARPNESS",
            "DLIB_QUALITY_MIN_SHARPNESS",
        )
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.security.decode_under_limit", str(folder), json.dumps(limits)],
        cwd=settings.BASE_DIR,
        preexec_fn=cap_memory,
        capture_output=True,
        text=True,
        timeout=300,
    )


class DecodingMemoryTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.folder = Path(tempfile.mkdtemp(prefix="hostile-corpus-"))
        face = Image.open(faces_dir() / FACE_PHOTO)
        cls.cases = {case.name: case for case in (*HOSTILE_CASES, *BIG_CASES)}
        for case in cls.cases.values():
            (cls.folder / case.name).write_bytes(case.data(face))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder)
        super().tearDownClass()

    def test_the_corpus_decodes_under_the_cap(self):
        child = decode_in_child(self.folder, CAP)
        self.assertEqual(child.returncode, 0, child.stderr[-3000:])
        results = {row["file"]: row for row in map(json.loads, child.stdout.splitlines())}
        self.assertEqual(set(results), set(self.cases), "files the child did not report on")
        for name, case in self.cases.items():
            with self.subTest(case=name):
                row = results[name]
                self.assertEqual(row["outcome"], "refused" if case.refused else "accepted", row)
                self.assertIn(case.refused, row["detail"])
        peak = max(row["peak_vm_mb"] for row in results.values())
        self.assertLess(peak, CAP // 1024**2)
        print(
            f"\ndecoding + face detection of {len(results)} files: peak address space {peak} MB, "
            f"peak RSS {max(row['peak_rss_mb'] for row in results.values())} MB (cap {CAP // 1024**2} MB)"
        )

    def test_the_cap_is_real(self):
        # Below what a 40 MP WebP needs, the same child starts and decodes a small photo, but not that one.
        folder = Path(tempfile.mkdtemp(prefix="hostile-corpus-two-"))
        self.addCleanup(shutil.rmtree, folder)
        for name in ("jpeg_exif_rotated", "webp_40mp"):
            (folder / name).write_bytes((self.folder / name).read_bytes())
        child = decode_in_child(folder, 900 * 1024**2)
        self.assertEqual(child.returncode, 0, child.stderr[-3000:])
        outcomes = {row["file"]: row["outcome"] for row in map(json.loads, child.stdout.splitlines())}
        self.assertEqual(outcomes["jpeg_exif_rotated"], "accepted")
        # libwebp reports a canvas it cannot allocate as a bad file (OSError), Pillow as MemoryError.
        self.assertIn(outcomes["webp_40mp"], ("memory_error", "refused"))
