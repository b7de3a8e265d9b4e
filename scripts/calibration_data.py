"""make calibration-data: the labelled impostor and mate distances the open-set calibration starts from.

Every pair of labelled faces of the shared photos (pairs/ and openset/), described by each engine; the
distances (not the photos) go to search/data/labelled_pairs.json, which the product reads. A test
recomputes them from the photos and compares.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from scripts.labelled_faces import labelled_faces, pair_distances  # noqa: E402
from search.calibration import LABELLED_PAIRS_FILE  # noqa: E402
from search.faces import ENGINES, get_engine  # noqa: E402


def labelled_pairs_data() -> dict:
    data = {}
    for name in ENGINES:
        faces = labelled_faces(name)
        impostors, mates = pair_distances(name, faces)
        data[name] = {
            "engine_version": get_engine(name).version,
            "faces": len(faces),
            "people": len({face.identity for face in faces}),
            "impostors": sorted(round(d, 5) for d in impostors),
            "mates": sorted(round(d, 5) for d in mates),
        }
        print(f"{name}: {len(faces)} faces, {len(impostors)} impostor pairs, {len(mates)} mate pairs", file=sys.stderr)
    return data


if __name__ == "__main__":
    LABELLED_PAIRS_FILE.write_text(json.dumps(labelled_pairs_data(), indent=0) + "\n")
    print(f"Wrote {LABELLED_PAIRS_FILE}", file=sys.stderr)
