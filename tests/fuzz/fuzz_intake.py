"""Fuzzing the photo intake with atheris: decode_photo (format, size and pixel checks, EXIF rotation,
colour modes) → the stored re-encode → face detection with the default dlib engine at the product's
detection scale → each face's aligned crop and its sharpness (the quality check).

The 128-d descriptor is left out: its network sees only the aligned chip, the same shape whatever the
upload was, and at ~0.2 s a face it would cut the executions per second tenfold.

    python tests/fuzz/fuzz_intake.py [libFuzzer flags] CORPUS_DIR

An empty CORPUS_DIR is first filled with seeds: the shared labelled photos, downscaled, in each
accepted format, and the generated hostile corpus (tests/security/corpus.py). Per-input timeout,
memory limit and input size default to the values below unless given.

PhotoRejected, the product's clean refusal, is the only accepted exception. Any other exception, a
failed invariant, a native crash, an input over the timeout or the process over the memory limit is
a finding, saved by libFuzzer under -artifact_prefix.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FLAGS = {"-timeout": "30", "-rss_limit_mb": "1024", "-max_len": "65536"}
SEED_SIDE = 200  # px: big enough for dlib to find a portrait's face, small enough to fuzz fast

sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
import django  # noqa: E402

django.setup()

# Pillow loads its format plugins lazily: import the ones an upload reaches here, so they are instrumented.
with atheris.instrument_imports(include=["PIL", "search.imaging"]):
    from PIL import (  # noqa: E402,F401
        Image,
        ImageOps,
        JpegImagePlugin,
        MpoImagePlugin,
        PngImagePlugin,
        TiffImagePlugin,
        WebPImagePlugin,  # noqa: E402,F401
    )

    from search.imaging import PhotoRejected, decode_photo, encode_jpeg, scaled_for_detection  # noqa: E402

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from search.faces import get_engine, sharpness  # noqa: E402

ENGINE = get_engine(settings.FACE_ENGINE)
# Pillow warns about each malformed EXIF tag it skips; thousands a minute would bury libFuzzer's report.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
CHIP_SIDE = 150  # the aligned crop the product measures sharpness on (search/photo_faces.py)


def test_one_input(data: bytes) -> None:
    try:
        photo = decode_photo(data)
    except PhotoRejected:
        return
    # What decode_photo promises whatever the bytes were.
    assert photo.image.mode == "RGB", photo.image.mode
    assert 1 <= photo.width * photo.height <= settings.UPLOAD_MAX_PIXELS, photo.image.size
    assert not photo.image.info, photo.image.info
    stored = encode_jpeg(photo.image)
    assert stored.startswith(b"\xff\xd8") and stored.endswith(b"\xff\xd9")
    array, scale = scaled_for_detection(photo.image)
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3, (array.dtype, array.shape)
    assert max(array.shape[:2]) <= max(settings.FACE_DETECT_MAX_SIDE, 1) and 0 < scale <= 1
    for face in ENGINE.detect(array):
        x, y, width, height = face.box
        assert width > 0 and height > 0 and 0 <= x < array.shape[1] and 0 <= y < array.shape[0], face.box
        chip = ENGINE.aligned_crop(array, face, CHIP_SIDE)
        assert chip.shape == (CHIP_SIDE, CHIP_SIDE, 3), chip.shape
        quality = face.quality(sharpness(np.asarray(Image.fromarray(chip).convert("L"))))
        assert quality["sharpness"] >= 0, quality


def seed_inputs() -> dict[str, bytes]:
    """Small valid photos in every accepted form, and the hostile corpus, as starting points."""
    from tests.security.corpus import HOSTILE_CASES, encoded, exif_with_gps, plain_card

    seeds = {}
    photos = sorted((settings.FACES_DIR / "pairs").glob("*.jpg"))
    for index, path in enumerate(photos):
        with Image.open(path) as original:
            original.draft("RGB", (SEED_SIDE * 2, SEED_SIDE * 2))  # decode at a fraction of the size
            small = original.convert("RGB")
        small.thumbnail((SEED_SIDE, SEED_SIDE))
        seeds[f"{path.stem}.jpg"] = encoded(small, quality=75)
        if index % 8 == 0:  # a few of each other form, enough for the mutator to splice from
            seeds[f"{path.stem}.png"] = encoded(small.convert("RGBA"), "PNG")
            seeds[f"{path.stem}.webp"] = encoded(small, "WEBP", quality=70)
            seeds[f"{path.stem}-progressive.jpg"] = encoded(small, quality=70, progressive=True)
            seeds[f"{path.stem}-rotated.jpg"] = encoded(small, quality=70, exif=exif_with_gps(orientation=6))
            seeds[f"{path.stem}-grey.png"] = encoded(small.convert("L"), "PNG")
            seeds[f"{path.stem}-cmyk.jpg"] = encoded(small.convert("CMYK"), quality=70)
    face = Image.open(photos[0]).convert("RGB") if photos else plain_card()
    face.thumbnail((SEED_SIDE, SEED_SIDE))
    max_len = int(DEFAULT_FLAGS["-max_len"])
    for case in HOSTILE_CASES:
        data = case.data(face)
        if len(data) <= max_len:
            seeds[f"hostile-{case.name}"] = data
    return seeds


def main(argv: list[str]) -> None:
    flags = {arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("-")}
    argv = argv + [f"{flag}={value}" for flag, value in DEFAULT_FLAGS.items() if flag not in flags]
    for folder in (Path(arg) for arg in argv[1:] if not arg.startswith("-")):
        if folder.is_dir() and not any(folder.iterdir()):
            for name, data in seed_inputs().items():
                (folder / name).write_bytes(data)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
