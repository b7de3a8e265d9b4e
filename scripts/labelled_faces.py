"""The labelled faces of the shared photos (../shared/faces): who is in each, described by an engine.

pairs/ gives one person per photo (the largest face; identities.csv), openset/ names the people of each
photo left to right. Used by the calibration data, its test and the benchmarks; never by the product.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from search.faces import engine_distance, get_engine
from search.imaging import decode_photo
from search.photo_faces import FoundFace, PhotoFaces

GROUP_PHOTOS = ["couple.jpg", "selfie-many-people.jpg"]


@dataclass
class LabelledFace:
    identity: str
    file: str  # "pairs/img1.jpg", "openset/longoria-cooper.jpg#2"
    face: FoundFace

    @property
    def embedding(self) -> np.ndarray:
        return self.face.embedding


def identities(folder: Path, column: str) -> dict[str, list[str]]:
    with (folder / "identities.csv").open() as rows:
        return {row["file"]: row[column].split(";") for row in csv.DictReader(rows)}


def photo_faces(path: Path, engine_name: str, transform=None) -> list[FoundFace]:
    image = decode_photo(path.read_bytes()).image
    if transform is not None:
        image = transform(image)
    return PhotoFaces(image, get_engine(engine_name)).find()


def labelled_faces(engine_name: str, transform=None, folders=("pairs", "openset")) -> list[LabelledFace]:
    """Every labelled face the engine finds; a photo whose faces cannot be told apart is left out."""
    out = []
    for folder_name in folders:
        folder = settings.FACES_DIR / folder_name
        column = "identity" if folder_name == "pairs" else "identities"
        for file, people in identities(folder, column).items():
            faces = photo_faces(folder / file, engine_name, transform)
            if len(people) == 1 and faces:
                out.append(LabelledFace(people[0], f"{folder_name}/{file}", max(faces, key=lambda f: f.width)))
            elif len(people) > 1 and len(faces) == len(people):
                out += [
                    LabelledFace(person, f"{folder_name}/{file}#{number}", face)
                    for number, (person, face) in enumerate(zip(people, faces, strict=True), start=1)
                ]
    return out


def pair_distances(engine_name: str, faces: list[LabelledFace]) -> tuple[list[float], list[float]]:
    """(impostor distances, mate distances) over every pair of labelled faces."""
    impostors, mates = [], []
    for a, b in itertools.combinations(faces, 2):
        distance = engine_distance(engine_name, a.embedding, b.embedding)
        (mates if a.identity == b.identity else impostors).append(distance)
    return impostors, mates
