"""make bench-engines: the two face engines side by side on the shared photos. A benchmark, never a test.

Detectors: faces found (the group photos included) and ms per photo. Descriptors: pair accuracy at
each engine's threshold, leave-one-out rank-1, the furthest mate and the closest impostor, d′, ms per
face. Runs in-process on the engines (no database needed beyond settings); prints Markdown.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from portal import embedded  # noqa: E402

embedded.ensure_services()

import django  # noqa: E402

django.setup()

import dlib  # noqa: E402
import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from tqdm import tqdm  # noqa: E402

from scripts.figures import percentile  # noqa: E402
from search.faces import DLIB_RESNET, YUNET_SFACE, get_engine  # noqa: E402
from search.imaging import decode_photo, scaled_for_detection  # noqa: E402

ENGINES = [DLIB_RESNET, YUNET_SFACE]
GROUP_PHOTOS = ["img67.jpg", "couple.jpg", "selfie-many-people.jpg"]


def distance(engine: str, a: np.ndarray, b: np.ndarray) -> float:
    if engine == YUNET_SFACE:
        return 1.0 - float(a @ b)
    return float(np.linalg.norm(a - b))


def main() -> None:
    pairs_dir = settings.FACES_DIR / "pairs"
    with (pairs_dir / "identities.csv").open() as rows:
        identity = {row["file"]: row["identity"] for row in csv.DictReader(rows)}
    with (pairs_dir / "master.csv").open() as rows:
        pairs = [(r["file_x"], r["file_y"], r["Decision"] == "Yes") for r in csv.DictReader(rows)]
    photos = {
        name: scaled_for_detection(decode_photo((pairs_dir / name).read_bytes()).image)[0]
        for name in list(identity) + GROUP_PHOTOS
    }

    detector_rows = []
    hog = dlib.get_frontal_face_detector()
    cnn_engine = get_engine(DLIB_RESNET)
    for label, run in [
        ("dlib HOG, upsample 0", lambda img: hog.run(img, 0, 0.0)[0]),
        ("dlib HOG, upsample 1 (dlib engine default)", lambda img: hog.run(img, 1, 0.0)[0]),
        ("dlib CNN (mmod), upsample 0", lambda img: cnn_engine.detect(img, sensitive=True)),
        ("YuNet int8, score ≥ 0.6 (SFace engine)", lambda img: get_engine(YUNET_SFACE).detect(img)),
    ]:
        times, found, group = [], 0, {}
        for name, image in tqdm(photos.items(), desc=label, file=sys.stderr):
            started = time.perf_counter()
            faces = run(image)
            times.append((time.perf_counter() - started) * 1000)
            if name in GROUP_PHOTOS:
                group[name] = len(faces)
            else:
                found += len(faces) >= 1
        detector_rows.append((label, found, len(identity), group, statistics.median(times), percentile(times, 95)))

    descriptor_rows = []
    for engine_name in ENGINES:
        engine = get_engine(engine_name)
        embeddings, per_face = {}, []
        for name in tqdm(identity, desc=engine_name, file=sys.stderr):
            faces = engine.detect(photos[name])
            face = max(faces, key=lambda f: f.width)
            started = time.perf_counter()
            embeddings[name] = engine.embed(photos[name], face)
            per_face.append((time.perf_counter() - started) * 1000)
        mates, impostors, right = [], [], 0
        for a, b, same in pairs:
            d = distance(engine_name, embeddings[a], embeddings[b])
            (mates if same else impostors).append(d)
            right += (d <= engine.default_threshold) == same
        names = list(embeddings)
        rank1 = sum(
            identity[
                min((x for x in names if x != a), key=lambda x: distance(engine_name, embeddings[a], embeddings[x]))
            ]
            == identity[a]
            for a in names
        )
        d_prime = abs(np.mean(impostors) - np.mean(mates)) / np.sqrt((np.var(impostors) + np.var(mates)) / 2)
        descriptor_rows.append(
            (
                engine_name,
                engine.default_threshold,
                right,
                len(pairs),
                rank1,
                len(names),
                max(mates),
                min(impostors),
                d_prime,
                statistics.median(per_face),
            )
        )

    print(f"\n### make bench-engines — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; photos "
        f"scaled to ≤ {settings.FACE_DETECT_MAX_SIDE} px; {len(identity)} labelled photos, {len(pairs)} pairs.\n"
    )
    print(
        "| detector | labelled photos (img67 aside) with a face | img67 | couple | selfie (7 a person counts) "
        "| ms/photo p50 | p95 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, found, total, group, p50, p95 in detector_rows:
        print(
            f"| {label} | {found}/{total} | {group['img67.jpg']} | {group['couple.jpg']} | "
            f"{group['selfie-many-people.jpg']} | {p50:.0f} | {p95:.0f} |"
        )
    print(
        "\n| descriptor | threshold (distance) | pairs right | leave-one-out rank-1 | furthest mate | "
        "closest impostor | gap | d′ | ms/face p50 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, threshold, right, total, rank1, n, mate, impostor, d_prime, ms in descriptor_rows:
        print(
            f"| {name} | {threshold:.3f} | {right}/{total} | {rank1}/{n} | {mate:.3f} | {impostor:.3f} | "
            f"{impostor - mate:+.3f} | {d_prime:.2f} | {ms:.1f} |"
        )


if __name__ == "__main__":
    main()
