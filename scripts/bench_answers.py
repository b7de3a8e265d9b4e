"""make bench-answers: the answers a search gives on the shared photos — likely candidates for strangers,
mates found — under the product's calibrated open-set threshold and the alternatives. A benchmark, never
a test.

Gallery: every labelled face (pairs/ and openset/). Strangers: each person in turn removed from the
gallery and their faces searched against the rest (leave-one-identity-out), plus the faces of the group
photos that are not enrolled people. Mates: each labelled face against the gallery without that photo.
Each search's threshold is `search.open_set.threshold_for` on a tail fit of the labelled impostor
distances without every pair involving the person searched (so the calibration never saw that
stranger), for the faces of that search's gallery. Then the quality curve: the probe photos downscaled
and blurred step by step, searched against the undegraded gallery. Draws docs/images/det-answers.png
(Pillow). In-process engines, no database writes; prints Markdown. Nothing is cached.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from portal import embedded  # noqa: E402

embedded.ensure_services()

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402
from tqdm import tqdm  # noqa: E402

from scripts.labelled_faces import GROUP_PHOTOS, identities  # noqa: E402
from search.calibration import labelled_impostors  # noqa: E402
from search.faces import (  # noqa: E402
    DLIB_RESNET,
    ENGINES,
    YUNET_SFACE,
    engine_distance,
    engine_threshold,
    get_engine,
)
from search.imaging import decode_photo  # noqa: E402
from search.open_set import LIKELY, METHOD, face_decision, tail_fit, threshold_for  # noqa: E402

# A face found in a degraded photo is the labelled one when their boxes overlap as the product's same-face rule asks.
from search.photo_faces import SAME_FACE_OVERLAP, PhotoFaces, box_overlap  # noqa: E402

RUN_ENGINES = [YUNET_SFACE, DLIB_RESNET]
SCALES = [1, 0.7, 0.5, 0.35, 0.25, 0.18, 0.125, 0.09]
BLUR_RADII = [1, 2, 4, 6, 8]
FRAME_HEIGHT = 240
FACE_WIDTH = 50
# A group-photo face is taken for P01 when its nearest labelled face is P01 at under this share of the
# engine's mate bound (well under any threshold); every other group-photo face is a stranger.
P01_SHARE_OF_BOUND = 2 / 3
DET_FILE = settings.BASE_DIR / "docs" / "images" / "det-answers.png"
ENROL_TABLE_PHOTOS = ["pairs/img1.jpg", "pairs/img17.jpg", "pairs/img29.jpg"]


# --- Describing the photos (in worker processes) ---------------------------------------------------


@functools.cache
def base_image(key: str) -> tuple[Image.Image, float]:
    """The photo as the engines see it (≤ FACE_DETECT_MAX_SIDE, the product's resize), and that scale."""
    image = decode_photo((settings.FACES_DIR / key).read_bytes()).image
    scale = min(1.0, settings.FACE_DETECT_MAX_SIDE / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image, scale


def worker_setup() -> None:
    """One thread per worker process: the workers share the cores between them."""
    import cv2

    cv2.setNumThreads(1)


def describe(engine_name: str, key: str, kind: str, value: float, factor: float) -> tuple[list[tuple], float]:
    """The faces of one photo after one degradation: (box in the undegraded photo's pixels, descriptor,
    quality), and the CPU seconds it took. kind "blur": Gaussian blur of radius value × longest side / 1024;
    otherwise scaled by factor."""
    started = time.process_time()
    image, _ = base_image(key)
    if kind == "blur":
        image = image.filter(ImageFilter.GaussianBlur(value * max(image.size) / 1024))
    elif factor != 1:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    faces = PhotoFaces(image, get_engine(engine_name)).find()
    found = [(tuple(v / factor for v in face.box), face.embedding, face.quality) for face in faces]
    return found, time.process_time() - started


# --- The faces ----------------------------------------------------------------------------------------


@dataclass
class Face:
    label: str  # "pairs/img1.jpg", "openset/longoria-cooper.jpg#2", "pairs/couple.jpg#2"
    photo: str  # "pairs/img1.jpg"
    identity: str | None  # None: a stranger of a group photo
    subset: str  # "pairs", "openset", "group"
    box: tuple
    embedding: np.ndarray
    quality: dict
    nearest: tuple = ()  # group photos: (distance, identity) of the nearest labelled face


@dataclass
class Step:
    name: str
    kind: str  # "scale", "blur", "frame", "face"
    value: float


STEPS = (
    [Step(f"scale {f:g}", "scale", f) for f in SCALES]
    + [Step(f"blur r {r}", "blur", r) for r in BLUR_RADII]
    + [Step(f"{FRAME_HEIGHT}p frame", "frame", FRAME_HEIGHT), Step(f"face ≈ {FACE_WIDTH} px", "face", FACE_WIDTH)]
)


def photo_list() -> list[tuple[str, list[str] | None]]:
    """(key, people left to right) of every photo; None for the group photos."""
    photos = []
    for folder_name, column in (("pairs", "identity"), ("openset", "identities")):
        for file, people in identities(settings.FACES_DIR / folder_name, column).items():
            photos.append((f"{folder_name}/{file}", people))
    return photos + [(f"pairs/{name}", None) for name in GROUP_PHOTOS]


def labelled_of(key: str, people: list[str], found: list[tuple]) -> list[Face]:
    """scripts.labelled_faces' rule: one person, the largest face; several, one face each or none."""
    subset = key.split("/")[0]
    if len(people) == 1 and found:
        box, embedding, quality = max(found, key=lambda f: f[0][2])
        return [Face(key, key, people[0], subset, box, embedding, quality)]
    if len(people) > 1 and len(found) == len(people):
        return [
            Face(f"{key}#{n}", key, person, subset, box, embedding, quality)
            for n, (person, (box, embedding, quality)) in enumerate(zip(people, found, strict=True), start=1)
        ]
    return []


def group_faces(engine_name: str, key: str, found: list[tuple], labelled: list[Face]) -> list[Face]:
    """The faces of a group photo: P01 where the nearest labelled face is P01 well under the bound."""
    bound = engine_threshold(engine_name)
    out = []
    for n, (box, embedding, quality) in enumerate(found, start=1):
        distance, identity = min((engine_distance(engine_name, embedding, f.embedding), f.identity) for f in labelled)
        is_p01 = identity == "P01" and distance < P01_SHARE_OF_BOUND * bound
        out.append(
            Face(f"{key}#{n}", key, "P01" if is_p01 else None, "group", box, embedding, quality, (distance, identity))
        )
    return out


def matched(base: Face, found: list[tuple]) -> Face | None:
    """The degraded face of `found` that is `base`'s face (boxes overlapping), or None."""
    best = max(found, key=lambda f: box_overlap(list(base.box), list(f[0])), default=None)
    if best is None or box_overlap(list(base.box), list(best[0])) < SAME_FACE_OVERLAP:
        return None
    box, embedding, quality = best
    return Face(base.label, base.photo, base.identity, base.subset, box, embedding, quality, base.nearest)


# --- Searches -------------------------------------------------------------------------------------------


@dataclass
class Search:
    probe: Face
    kind: str  # "stranger" or "mate"
    excluded: frozenset  # labels of the gallery faces left out
    calibration_without: str | None  # identity whose impostor pairs the calibration leaves out


@dataclass
class Rule:
    name: str
    fusion: str  # "best", "mean", "template"
    calibrated: bool


RULES = [
    Rule("calibrated, best-of (the product)", "best", True),
    Rule("fixed mate bound, best-of", "best", False),
    Rule("calibrated, mean of distances", "mean", True),
    Rule("calibrated, template (N = profiles)", "template", True),
]


@dataclass
class Outcome:
    search: Search
    rank1: str | None  # the identity at rank 1
    best: float  # the rank-1 fused distance
    mate: float | None  # the mate profile's fused distance
    mate_rank: int | None
    threshold: float
    likely_profiles: int  # profiles at or under the threshold (0 when the face is below the floors)
    decision: str
    quality: dict = field(default_factory=dict)  # the probe face's
    detected: bool = True


class Evaluator:
    """One engine's gallery (the undegraded labelled faces), its calibrations and its searches."""

    def __init__(self, engine_name: str, gallery: list[Face]):
        self.engine = engine_name
        self.gallery = gallery
        self.bound = engine_threshold(engine_name)
        vectors = np.stack([f.embedding for f in gallery]).astype(np.float64)
        self.vectors = vectors
        self.ids = np.array([f.identity for f in gallery])
        self.labels = [f.label for f in gallery]
        pairwise = self.distances_to_many(vectors)
        upper = np.triu_indices(len(gallery), k=1)
        self.pair_distance = pairwise[upper]
        self.pair_ids = (self.ids[upper[0]], self.ids[upper[1]])
        impostor = self.pair_ids[0] != self.pair_ids[1]
        self.impostor_mask = impostor
        self.fits = {None: tail_fit(self.pair_distance[impostor])}
        self.fit_pairs = {None: int(impostor.sum())}
        for identity in sorted(set(self.ids)):
            keep = impostor & (self.pair_ids[0] != identity) & (self.pair_ids[1] != identity)
            self.fits[identity] = tail_fit(self.pair_distance[keep])
            self.fit_pairs[identity] = int(keep.sum())
        self._thresholds: dict = {}

    def distances_to_many(self, probes: np.ndarray) -> np.ndarray:
        probes = np.atleast_2d(probes).astype(np.float64)
        if ENGINES[self.engine].metric == "cosine":
            a = probes / np.linalg.norm(probes, axis=1, keepdims=True)
            b = self.vectors / np.linalg.norm(self.vectors, axis=1, keepdims=True)
            return 1.0 - a @ b.T
        return np.linalg.norm(probes[:, None, :] - self.vectors[None, :, :], axis=2)

    def threshold(self, without: str | None, gallery_faces: int) -> float:
        key = (without, gallery_faces)
        if key not in self._thresholds:
            self._thresholds[key] = threshold_for(
                self.fits[without],
                engine=self.engine,
                gallery_faces=gallery_faces,
                expected_false=settings.OPEN_SET_EXPECTED_FALSE,
                mate_bound=self.bound,
                labelled_pairs=self.fit_pairs[without],
                gallery_pairs=0,
            ).distance
        return self._thresholds[key]

    def searches(self, extra_strangers: list[Face]) -> list[Search]:
        out = []
        for face in self.gallery:
            same = frozenset(f.label for f in self.gallery if f.identity == face.identity)
            out.append(Search(face, "stranger", same, face.identity))
        for face in extra_strangers:
            out.append(Search(face, "stranger", frozenset(), None))
        for face in self.gallery:
            others = [f for f in self.gallery if f.identity == face.identity and f.photo != face.photo]
            if others:
                photo = frozenset(f.label for f in self.gallery if f.photo == face.photo)
                out.append(Search(face, "mate", photo, face.identity))
        return out

    def profile_distances(self, probe: np.ndarray, keep: np.ndarray, fusion: str) -> dict[str, float]:
        if fusion == "template":
            out = {}
            for identity in sorted(set(self.ids[keep])):
                members = self.vectors[keep & (self.ids == identity)]
                # SFace's descriptors are unit length (the mean of normalised descriptors); dlib's are not
                # (norms ≈ 1.3–1.6) and its metric is Euclidean: the plain mean, on the threshold's scale.
                template = members.mean(axis=0)
                out[identity] = engine_distance(self.engine, probe, template)
            return out
        distances = self.distances_to_many(probe)[0]
        out = {}
        for identity in sorted(set(self.ids[keep])):
            values = distances[keep & (self.ids == identity)]
            out[identity] = float(values.min() if fusion == "best" else values.mean())
        return out

    def run(self, search: Search, rule: Rule, probe: Face | None = None) -> Outcome:
        """The search with the probe given (a degraded version of search.probe) or search.probe."""
        keep = np.array([label not in search.excluded for label in self.labels])
        gallery_faces = int(keep.sum())
        profiles = len(set(self.ids[keep]))
        if rule.calibrated:
            n = profiles if rule.fusion == "template" else gallery_faces
            threshold = self.threshold(search.calibration_without, n)
        else:
            threshold = self.bound
        identity = search.probe.identity if search.kind == "mate" else None
        face = probe or search.probe
        fused = self.profile_distances(face.embedding, keep, rule.fusion)
        ranked = sorted(fused.items(), key=lambda item: item[1])
        usable = bool(face.quality.get("usable", True))
        decision = face_decision(usable=usable, compared=[(d, threshold) for _, d in ranked])
        mate_rank = next((n for n, (who, _) in enumerate(ranked, start=1) if who == identity), None)
        return Outcome(
            search,
            ranked[0][0],
            ranked[0][1],
            fused.get(identity) if identity else None,
            mate_rank,
            threshold,
            sum(d <= threshold for _, d in ranked) if usable else 0,
            decision,
            face.quality,
        )


def missing(search: Search) -> Outcome:
    return Outcome(search, None, float("inf"), None, None, float("nan"), 0, "not_detected", detected=False)


# --- Figures -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    strangers: int = 0
    false_candidates: int = 0
    false_faces: int = 0  # stranger faces with a likely decision
    false_under_ignoring_floor: int = 0
    mates: int = 0
    rank1: int = 0
    rank1_likely: int = 0
    rank1_under_ignoring_floor: int = 0
    detected: int = 0
    misses: list = field(default_factory=list)


def tally(outcomes: list[Outcome]) -> Tally:
    t = Tally()
    for o in outcomes:
        t.detected += o.detected
        if o.search.kind == "stranger":
            t.strangers += 1
            t.false_candidates += o.likely_profiles
            t.false_faces += o.decision == LIKELY
            t.false_under_ignoring_floor += o.detected and o.best <= o.threshold
        else:
            t.mates += 1
            at_rank1 = o.detected and o.rank1 == o.search.probe.identity
            t.rank1 += at_rank1
            t.rank1_likely += at_rank1 and o.decision == LIKELY and o.mate <= o.threshold
            t.rank1_under_ignoring_floor += at_rank1 and o.mate <= o.threshold
            if not (at_rank1 and o.decision == LIKELY):
                t.misses.append(o)
    return t


def by_subset(outcomes: list[Outcome], subset: str | None) -> list[Outcome]:
    return [o for o in outcomes if subset is None or o.search.probe.subset == subset]


def rate(k: int, n: int) -> str:
    if n == 0:
        return "—"
    bound = f" (≤ {3 / n:.3f} by the rule of three)" if k == 0 else ""
    return f"{k}/{n} = {k / n:.3f}{bound}"


def miss_text(o: Outcome) -> str:
    if not o.detected:
        return f"`{o.search.probe.label}` (no face found)"
    why = (
        "below the quality floors"
        if o.decision != LIKELY and o.rank1 == o.search.probe.identity and o.mate <= o.threshold
        else f"rank {o.mate_rank}, {o.rank1} first at {o.best:.3f}"
        if o.rank1 != o.search.probe.identity
        else "over the threshold"
    )
    return f"`{o.search.probe.label}` {o.mate:.3f} vs {o.threshold:.3f} ({why})"


def det_points(outcomes: list[Outcome]) -> tuple[list[tuple[float, float, float]], int, int]:
    """(threshold, FPIR, FNIR) over every distance the scores take; FNIR: mate not at rank 1 at or under t."""
    strangers = [o.best for o in outcomes if o.search.kind == "stranger" and o.decision != "low_quality"]
    n_strangers = sum(o.search.kind == "stranger" for o in outcomes)
    mates = [
        o.mate
        for o in outcomes
        if o.search.kind == "mate" and o.rank1 == o.search.probe.identity and o.decision != "low_quality"
    ]
    n_mates = sum(o.search.kind == "mate" for o in outcomes)
    s, m = np.sort(strangers), np.sort(mates)
    points = []
    for t in np.unique(np.concatenate([s, m, [0.0, 2.0]])):
        fpir = np.searchsorted(s, t, side="right") / n_strangers
        fnir = 1 - np.searchsorted(m, t, side="right") / n_mates
        points.append((float(t), float(fpir), float(fnir)))
    return points, n_strangers, n_mates


def fnir_at(points, fpir: float) -> tuple[float, float]:
    """FNIR at the largest threshold whose FPIR is at most `fpir`, and that threshold."""
    allowed = [p for p in points if p[1] <= fpir + 1e-12]
    best = max(allowed, key=lambda p: p[0])
    return best[2], best[0]


def font(size: int):
    return ImageFont.load_default(size=size)


COLOURS = {YUNET_SFACE: (31, 119, 180), DLIB_RESNET: (214, 39, 40)}
GREY, LIGHT = (110, 110, 110), (222, 222, 222)


class Panel:
    """A plot area of the figure: maps data to pixels (log axes clamp 0 to the lower edge)."""

    def __init__(self, draw, box, x_range, y_range, x_log=False, y_log=False):
        self.d, self.box = draw, box
        self.x_range, self.y_range, self.x_log, self.y_log = x_range, y_range, x_log, y_log

    def _frac(self, v, bounds, log):
        lo, hi = bounds
        if log:
            v = max(v, lo)
            return (np.log10(v) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
        return (min(max(v, lo), hi) - lo) / (hi - lo)

    def at(self, x, y):
        left, top, right, bottom = self.box
        return (
            left + self._frac(x, self.x_range, self.x_log) * (right - left),
            bottom - self._frac(y, self.y_range, self.y_log) * (bottom - top),
        )

    def axes(self, x_ticks, y_ticks, x_label, y_label, title):
        left, top, right, bottom = self.box
        for v in x_ticks:
            x, _ = self.at(v, self.y_range[0])
            self.d.line([x, top, x, bottom], fill=LIGHT)
            text = "0" if self.x_log and v == self.x_range[0] else f"{v:g}"
            self.d.text((x, bottom + 6), text, fill="black", font=font(13), anchor="mt")
        for v in y_ticks:
            _, y = self.at(self.x_range[0], v)
            self.d.line([left, y, right, y], fill=LIGHT)
            text = "0" if self.y_log and v == self.y_range[0] else f"{v:g}"
            self.d.text((left - 6, y), text, fill="black", font=font(13), anchor="rm")
        self.d.rectangle(self.box, outline="black")
        self.d.text(((left + right) / 2, bottom + 26), x_label, fill="black", font=font(13), anchor="mt")
        self.d.text((left, top - 24), title, fill="black", font=font(15))
        label = Image.new("RGB", (bottom - top, 20), "white")
        ImageDraw.Draw(label).text(((bottom - top) / 2, 10), y_label, fill="black", font=font(13), anchor="mm")
        self.d._image.paste(label.rotate(90, expand=True), (left - 62, top))

    def line(self, points, colour, width=3):
        self.d.line([self.at(x, y) for x, y in points], fill=colour, width=width)

    def mark(self, x, y, colour, shape):
        cx, cy = self.at(x, y)
        if shape == "circle":
            self.d.ellipse([cx - 7, cy - 7, cx + 7, cy + 7], outline=colour, width=3, fill="white")
        else:
            self.d.rectangle([cx - 6, cy - 6, cx + 6, cy + 6], fill=colour)


def staircase(points):
    out = []
    for (x0, y0), (x1, _) in zip(points, points[1:], strict=False):
        out += [(x0, y0), (x1, y0)]
    return out + points[-1:]


def draw_det(curves: dict, path: Path) -> None:
    """Left: FNIR against FPIR (both log, 0 at the edges) with the rules' operating points. Right: FPIR and
    FNIR against the distance threshold, with each engine's per-search calibrated thresholds and mate bound."""
    img = Image.new("RGB", (1280, 640), "white")
    d = ImageDraw.Draw(img)
    n_strangers = min(c["strangers"] for c in curves.values())
    det = Panel(d, (100, 80, 560, 540), (0.005, 1.0), (0.005, 1.0), x_log=True, y_log=True)
    x0, _ = det.at(0.005, 0.005)
    xr, _ = det.at(3 / n_strangers, 0.005)
    d.rectangle([x0, 80, xr, 540], fill=(240, 240, 240))
    d.text((x0 + 4, 84), f"FPIR < 3/{n_strangers}:", fill=GREY, font=font(11))
    d.text((x0 + 4, 98), "not resolved", fill=GREY, font=font(11))
    ticks = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    det.axes(
        ticks,
        ticks,
        "FPIR: stranger searches with a candidate under t",
        "FNIR: mates not at rank 1 under t",
        "DET, one threshold t swept (best-of fusion)",
    )
    rates = Panel(d, (720, 80, 1040, 540), (0.0, 0.9), (0.0, 1.0))
    rates.axes(
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        [0, 0.2, 0.4, 0.6, 0.8, 1.0],
        "distance threshold t",
        "share of searches",
        "FPIR (rising) and FNIR (falling) against t",
    )
    for row, (engine_name, c) in enumerate(curves.items()):
        colour = COLOURS[engine_name]
        det.line(staircase([(fpir, fnir) for _, fpir, fnir in c["points"]]), colour)
        for (fpir, fnir), shape in c["marks"]:
            det.mark(fpir, fnir, colour, shape)
        rates.line(staircase([(t, fpir) for t, fpir, _ in c["points"]]), colour)
        rates.line(staircase([(t, fnir) for t, _, fnir in c["points"]]), colour)
        low, high = c["thresholds"]
        (xl, _), (xh, _) = rates.at(low, 0), rates.at(high, 0)
        y = 540 - 14 - 9 * row
        d.rectangle([xl, y, max(xh, xl + 2), y + 6], fill=colour)
        xb, _ = rates.at(c["bound"], 0)
        d.line([xb, 80, xb, 540], fill=colour, width=1)
    lx, ly = 1060, 90
    for engine_name, c in curves.items():
        d.line([lx, ly + 8, lx + 30, ly + 8], fill=COLOURS[engine_name], width=3)
        d.text((lx + 38, ly), engine_name, fill="black", font=font(13))
        d.text((lx + 38, ly + 16), f"{c['mates']} mate, {c['strangers']} stranger", fill=GREY, font=font(12))
        d.text((lx + 38, ly + 30), "searches", fill=GREY, font=font(12))
        ly += 56
    d.ellipse([lx + 8, ly + 1, lx + 22, ly + 15], outline="black", width=3)
    d.text((lx + 38, ly), "calibrated threshold", fill="black", font=font(13))
    d.text((lx + 38, ly + 16), "(the product)", fill="black", font=font(13))
    ly += 44
    d.rectangle([lx + 9, ly + 2, lx + 21, ly + 14], fill="black")
    d.text((lx + 38, ly), "fixed mate bound", fill="black", font=font(13))
    d.text((lx + 38, ly + 16), "(0.637 SFace, 0.6 dlib)", fill="black", font=font(13))
    ly += 44
    d.text((lx, ly), "Right: the bars at the foot", fill=GREY, font=font(12))
    d.text((lx, ly + 15), "spans the calibrated per-search", fill=GREY, font=font(12))
    d.text((lx, ly + 30), "thresholds, the thin line is", fill=GREY, font=font(12))
    d.text((lx, ly + 45), "the mate bound.", fill=GREY, font=font(12))
    searches = "; ".join(f"{e}: {c['mates']} mate and {c['strangers']} stranger searches" for e, c in curves.items())
    d.text(
        (100, 592), f"Shared labelled photos, leave-one-out (make bench-answers); {searches}.", fill=GREY, font=font(12)
    )
    d.text((100, 608), "Left: a rate of 0 is drawn at the axis edge.", fill=GREY, font=font(12))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


# --- Main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    started = time.perf_counter()
    photos = photo_list()

    pool = ProcessPoolExecutor(
        max_workers=max(1, args.workers), mp_context=get_context("spawn"), initializer=worker_setup
    )

    cpu_by_step: dict[tuple[str, str], float] = {}

    def run_jobs(jobs: list[tuple], desc: str) -> dict:
        futures = {pool.submit(describe, *job[:5]): job for job in jobs}
        out = {}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, file=sys.stderr):
            job = futures[future]
            out[job], seconds = future.result()
            kind = "photos as they are" if len(job) == 5 else job[5].split(" ")[0]
            cpu_by_step[(job[0], kind)] = cpu_by_step.get((job[0], kind), 0.0) + seconds
        return out

    base_jobs = [(e, key, "scale", 1.0, 1.0) for e in RUN_ENGINES for key, _ in photos]
    base = run_jobs(base_jobs, "photos as they are")
    base_scale = {key: base_image(key)[1] for key, _ in photos}
    base_size = {key: base_image(key)[0].size for key, _ in photos}

    gallery, strangers, group_p01, found_group = {}, {}, {}, {}
    for e in RUN_ENGINES:
        gallery[e] = [
            face
            for key, people in photos
            if people
            for face in labelled_of(key, people, base[(e, key, "scale", 1.0, 1.0)])
        ]
        faces = [
            face
            for key, people in photos
            if people is None
            for face in group_faces(e, key, base[(e, key, "scale", 1.0, 1.0)], gallery[e])
        ]
        found_group[e] = faces
        strangers[e] = [f for f in faces if f.identity is None]
        group_p01[e] = [f for f in faces if f.identity == "P01"]

    evaluators = {e: Evaluator(e, gallery[e]) for e in RUN_ENGINES}

    # The degraded photos.
    jobs = []
    for e in RUN_ENGINES:
        probes = gallery[e] + found_group[e]
        for step in STEPS:
            if step.kind in ("scale", "blur"):
                if step.kind == "scale" and step.value == 1:
                    continue
                factor = step.value if step.kind == "scale" else 1.0
                jobs += [(e, key, step.kind, step.value, factor, step.name, None) for key, _ in photos]
            elif step.kind == "frame":
                jobs += [
                    (e, key, "scale", 0.0, min(1.0, FRAME_HEIGHT / base_size[key][1]), step.name, None)
                    for key, _ in photos
                ]
            else:
                jobs += [
                    (e, face.photo, "scale", 0.0, min(1.0, FACE_WIDTH / face.box[2]), step.name, face.label)
                    for face in probes
                ]
    degraded_raw = run_jobs(jobs, "degraded photos")

    searches = {e: evaluators[e].searches(strangers[e]) for e in RUN_ENGINES}
    results = {e: {rule.name: [evaluators[e].run(s, rule) for s in searches[e]] for rule in RULES} for e in RUN_ENGINES}
    p01_results = {
        e: [evaluators[e].run(Search(f, "mate", frozenset(), "P01"), RULES[0]) for f in group_p01[e]]
        for e in RUN_ENGINES
    }

    # Quality curve: every search again with the degraded probe, against the undegraded gallery.
    curve = {e: [] for e in RUN_ENGINES}
    for e in RUN_ENGINES:
        for step in STEPS:
            if step.kind == "scale" and step.value == 1:
                outcomes = results[e][RULES[0].name]
                probes = {s.probe.label: s.probe for s in searches[e]}
            else:
                probes = {}
                for job, found in degraded_raw.items():
                    if job[0] != e or job[5] != step.name:
                        continue
                    for face in gallery[e] + found_group[e]:
                        if face.photo == job[1] and (job[6] is None or job[6] == face.label):
                            probes[face.label] = matched(face, found)
                outcomes = [
                    evaluators[e].run(s, RULES[0], probes[s.probe.label])
                    if probes.get(s.probe.label) is not None
                    else missing(s)
                    for s in searches[e]
                ]
            faces = [f for f in probes.values() if f is not None]
            curve[e].append((step, faces, outcomes))

    pool.shutdown()
    wall = time.perf_counter() - started
    cpu = sum(
        getattr(resource.getrusage(who), usage)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for usage in ("ru_utime", "ru_stime")
    )
    report(base, base_scale, gallery, found_group, evaluators, results, p01_results, curve, (wall, cpu, cpu_by_step))


def report(base, base_scale, gallery, found_group, evaluators, results, p01_results, curve, elapsed):
    print(f"\n### make bench-answers — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; photos scaled "
        f"to ≤ {settings.FACE_DETECT_MAX_SIDE} px; OPEN_SET_EXPECTED_FALSE {settings.OPEN_SET_EXPECTED_FALSE}; "
        f"floors: eye distance {settings.QUALITY_MIN_EYE_DISTANCE_PX:g} px, sharpness "
        f"{settings.SFACE_QUALITY_MIN_SHARPNESS:g} (SFace) / {settings.DLIB_QUALITY_MIN_SHARPNESS:g} (dlib). "
        f"Run time {elapsed[0]:.0f} s wall, {elapsed[1]:.0f} s CPU over all processes "
        f"(load average {os.getloadavg()[0]:.1f} at the end); describing the photos, CPU s: "
        + "; ".join(
            f"{e}: " + ", ".join(f"{kind} {s:.0f}" for (name, kind), s in elapsed[2].items() if name == e)
            for e in RUN_ENGINES
        )
        + f". Tail model: {METHOD}.\n"
    )
    for e in RUN_ENGINES:
        ev = evaluators[e]
        shipped = labelled_impostors(e)
        recomputed = np.sort(ev.pair_distance[ev.impostor_mask])
        gap = float(np.abs(recomputed - shipped).max()) if len(shipped) == len(recomputed) else float("inf")
        fit = ev.fits[None]
        print(f"#### {e}\n")
        print(
            f"Gallery: {len(gallery[e])} labelled faces of {len(set(ev.ids))} people; "
            f"{ev.fit_pairs[None]} labelled impostor pairs "
            f"(search/data/labelled_pairs.json: {len(shipped)}, largest difference {gap:.1e}). "
            f"Fit on all of them: start {fit.start:.4f}, shape {fit.shape:g}, scale {fit.scale:.4f}; "
            f"check at the {fit.check().get('distance')}: empirical {fit.check().get('empirical', 0):.5f}, "
            f"fitted {fit.check().get('fitted', 0):.5f}. Mate bound {ev.bound}.\n"
        )
        sizes = [10, 70, 1000, 10_000, 100_000, 1_000_000]
        print("| gallery faces N | " + " | ".join(f"{n:,}" for n in sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        print("| threshold (all labelled pairs) | " + " | ".join(f"{ev.threshold(None, n):.4f}" for n in sizes) + " |")
        thresholds = sorted({o.threshold for o in results[e][RULES[0].name]})
        print(
            f"\nPer-search thresholds (calibration without the person searched, N = that gallery's faces): "
            f"{thresholds[0]:.4f}–{thresholds[-1]:.4f}.\n"
        )
        group_lines = [
            f"`{f.label}` → {'P01' if f.identity else 'stranger'} (nearest {f.nearest[1]} at {f.nearest[0]:.3f})"
            for f in found_group[e]
        ]
        print(
            "Group photos (P01 = nearest labelled face is P01 at under "
            f"{P01_SHARE_OF_BOUND:.2f} × the mate bound = {P01_SHARE_OF_BOUND * ev.bound:.3f}): "
            + "; ".join(group_lines)
            + ".\n"
        )
        print(
            "| rule | stranger searches | false likely candidates (per search) | strangers with a likely "
            "decision (FPIR) | mate searches | rank 1 | rank 1 and likely | FNIR |"
        )
        print("|---|---:|---:|---|---:|---:|---:|---:|")
        for rule in RULES:
            t = tally(results[e][rule.name])
            print(
                f"| {rule.name} | {t.strangers} | {t.false_candidates} ({t.false_candidates / t.strangers:.3f}) | "
                f"{rate(t.false_faces, t.strangers)} | {t.mates} | {t.rank1} | {t.rank1_likely} | "
                f"{1 - t.rank1_likely / t.mates:.3f} |"
            )
        print("\nBy subset (strangers: leave-one-identity-out for pairs/ and openset/, the group photos' strangers):\n")
        print(
            "| rule | subset | stranger searches | false likely (faces) | mate searches | rank 1 | rank 1 and likely |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        for rule in RULES:
            for subset in ("pairs", "openset", "group"):
                t = tally(by_subset(results[e][rule.name], subset))
                mates = f"{t.mates} | {t.rank1} | {t.rank1_likely}" if t.mates else "— | — | —"
                print(f"| {rule.name} | {subset} | {t.strangers} | {t.false_candidates} ({t.false_faces}) | {mates} |")
        print("\nMates not found as likely:\n")
        for rule in RULES:
            t = tally(results[e][rule.name])
            print(f"- {rule.name}: " + ("; ".join(miss_text(o) for o in t.misses) or "none"))
        stranger_hits = [
            f"`{o.search.probe.label}` → {o.rank1} {o.best:.3f} (≤ {o.threshold:.3f})"
            for o in results[e][RULES[0].name]
            if o.search.kind == "stranger" and o.decision == LIKELY
        ]
        fixed_hits = [
            f"`{o.search.probe.label}` → {o.rank1} {o.best:.3f}"
            for o in results[e][RULES[1].name]
            if o.search.kind == "stranger" and o.decision == LIKELY
        ]
        closest = sorted(
            (o for o in results[e][RULES[0].name] if o.search.kind == "stranger"), key=lambda o: o.best - o.threshold
        )[:3]
        print(f"\nStrangers shown as likely, calibrated: {'; '.join(stranger_hits) or 'none'}.")
        print(f"Strangers shown as likely, fixed bound: {'; '.join(fixed_hits) or 'none'}.")
        print(
            "Closest strangers to their threshold (calibrated): "
            + "; ".join(f"`{o.search.probe.label}` → {o.rank1} {o.best:.3f} vs {o.threshold:.3f}" for o in closest)
            + "."
        )
        p01 = p01_results[e]
        print(
            "Group-photo P01 faces against the full gallery (extra mates, not in the totals): "
            + "; ".join(
                f"`{o.search.probe.label}` rank-1 {o.rank1} at {o.best:.3f} vs {o.threshold:.3f} → {o.decision}"
                for o in p01
            )
            + ".\n"
        )
        points, n_s, n_m = det_points(results[e][RULES[0].name])
        targets = [f for f in (0.02, 0.05, 0.1, 0.2, 0.5) if f >= 3 / n_s]
        cells = []
        for target in targets:
            fnir, at = fnir_at(points, target)
            cells.append(f"FPIR ≤ {target:g}: FNIR {fnir:.3f} (t ≤ {at:.3f})")
        print(
            f"DET ({n_s} stranger and {n_m} mate searches, one threshold swept): the sample resolves FPIR from "
            f"3/{n_s} = {3 / n_s:.3f} up; " + "; ".join(cells) + ".\n"
        )

    curves = {}
    for e in RUN_ENGINES:
        points, n_s, n_m = det_points(results[e][RULES[0].name])
        marks = []
        for rule, shape in ((RULES[0], "circle"), (RULES[1], "square")):
            t = tally(results[e][rule.name])
            marks.append(((t.false_faces / t.strangers, 1 - t.rank1_likely / t.mates), shape))
        used = [o.threshold for o in results[e][RULES[0].name]]
        curves[e] = {
            "points": points,
            "mates": n_m,
            "strangers": n_s,
            "marks": marks,
            "thresholds": (min(used), max(used)),
            "bound": evaluators[e].bound,
        }
    draw_det(curves, DET_FILE)
    print(f"DET curve: `{DET_FILE.relative_to(settings.BASE_DIR)}`.\n")

    print("#### Quality curve (probes degraded, gallery as it is; calibrated threshold, best-of)\n")
    print(
        "Downscaled with Lanczos from the ≤ 1024 px photo; blurred with a Gaussian of radius r × longest side / "
        "1024. Eye distance and sharpness: medians over the probe faces found. Mates: rank 1 and likely; in "
        "brackets, rank 1 under the threshold were the floors not applied. Strangers: faces with a likely "
        "decision (in brackets: under the threshold, floors not applied).\n"
    )
    for e in RUN_ENGINES:
        print(f"{e}:\n")
        print(
            "| step | probe faces found | median eye distance px | median sharpness | below floors | "
            "mates rank 1 and likely | strangers false likely |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for step, faces, outcomes in curve[e]:
            t = tally(outcomes)
            eyes = [f.quality["eye_distance_px"] for f in faces]
            sharp = [f.quality["sharpness"] for f in faces]
            below = sum(not f.quality["usable"] for f in faces)
            print(
                f"| {step.name} | {t.detected}/{len(outcomes)} | {statistics.median(eyes) if eyes else 0:.1f} | "
                f"{statistics.median(sharp) if sharp else 0:.1f} | {below} | {t.rank1_likely}/{t.mates} "
                f"({t.rank1_under_ignoring_floor}) | {t.false_faces}/{t.strangers} ({t.false_under_ignoring_floor}) |"
            )
        for step, _, outcomes in curve[e]:
            if step.kind in ("frame", "face"):
                lost = tally(outcomes).misses
                print(f"\n{step.name}, mates not found as likely: " + ("; ".join(miss_text(o) for o in lost) or "none"))
        print()
        print_buckets(e, curve[e])

    print_enrolment(gallery, found_group, base, base_scale, curve)


EYE_BUCKETS = [0, 6, 7, 8, 9, 10, 11, 12, 15, 20, 30, 1e9]
SHARP_BUCKETS = [0, 2, 3, 4, 5, 7.5, 10, 15, 20, 40, 80, 1e9]


def print_buckets(e: str, steps) -> None:
    """Mates and strangers over every degraded step, by the probe's eye distance and its sharpness."""
    for name, key, edges, kinds in (
        ("eye distance px (scale, frame and face steps)", "eye_distance_px", EYE_BUCKETS, ("scale", "frame", "face")),
        ("sharpness (blur steps)", "sharpness", SHARP_BUCKETS, ("blur",)),
    ):
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            mates = found = strangers = under = 0
            for step, _, outcomes in steps:
                if step.kind not in kinds:
                    continue
                for o in outcomes:
                    if not o.detected:
                        continue
                    if not lo <= o.quality[key] < hi:
                        continue
                    if o.search.kind == "mate":
                        mates += 1
                        found += o.rank1 == o.search.probe.identity and o.mate <= o.threshold
                    else:
                        strangers += 1
                        under += o.best <= o.threshold
            if mates or strangers:
                label = f"≥ {lo:g}" if hi > 1e8 else f"{lo:g}–{hi:g}"
                rows.append(
                    f"| {label} | {mates} | {found} ({found / mates if mates else 0:.0%}) | {strangers} | {under} |"
                )
        print(f"{e}, by {name}; floors not applied:\n")
        print("| bucket | mate searches | mate at rank 1 under the threshold | stranger searches | stranger under |")
        print("|---|---:|---:|---:|---:|")
        print("\n".join(rows) + "\n")


def print_enrolment(gallery, found_group, base, base_scale, curve) -> None:
    print("#### Enrolment gate figures (the labelled photos of pairs/, each engine's own aligned crop)\n")
    print(
        "| engine | narrowest face (photo's own px) | least sharp | couple: 2nd / 1st face width | "
        "img67: faces, 2nd / 1st | smallest face found at any step (px of the photo searched) |"
    )
    print("|---|---:|---|---:|---|---:|")
    for e in RUN_ENGINES:
        pairs = [f for f in gallery[e] if f.subset == "pairs"]
        narrow = min(pairs, key=lambda f: f.box[2] / base_scale[f.photo])
        sharp = sorted(pairs, key=lambda f: f.quality["sharpness"])[:3]
        couple = sorted((b[0][2] for b in base[(e, "pairs/couple.jpg", "scale", 1.0, 1.0)]), reverse=True)
        img67 = sorted((b[0][2] for b in base[(e, "pairs/img67.jpg", "scale", 1.0, 1.0)]), reverse=True)
        smallest = min(
            f.quality["face_width_px"] for step, faces, _ in curve[e] if step.kind in ("scale", "frame") for f in faces
        )
        img67_text = f"{len(img67)}" + (f", {img67[1] / img67[0]:.2f}" if len(img67) > 1 else "")
        print(
            f"| {e} | {narrow.box[2] / base_scale[narrow.photo]:.0f} (`{narrow.label}`) | "
            + ", ".join(f"{f.quality['sharpness']:.0f} (`{f.label}`)" for f in sharp)
            + f" | {couple[1] / couple[0]:.2f} | {img67_text} | {smallest} |"
        )
    print("\nSharpness of the aligned face under blur (r × longest side / 1024), and labelled pairs/ photos ≥ 25:\n")
    print("| engine | photo | " + " | ".join(["r 0"] + [f"r {r}" for r in BLUR_RADII]) + " |")
    print("|---|---|" + "---:|" * (len(BLUR_RADII) + 1))
    for e in RUN_ENGINES:
        pairs = [f for f in gallery[e] if f.subset == "pairs"]
        least = [f.label for f in sorted(pairs, key=lambda f: f.quality["sharpness"])[:3]]
        blur_faces = {step.value: {f.label: f for f in faces} for step, faces, _ in curve[e] if step.kind == "blur"}
        for label in dict.fromkeys(ENROL_TABLE_PHOTOS + least):
            values = [next(f for f in pairs if f.label == label).quality["sharpness"]]
            values += [
                blur_faces[r][label].quality["sharpness"] if label in blur_faces[r] else None for r in BLUR_RADII
            ]
            print(f"| {e} | `{label}` | " + " | ".join("—" if v is None else f"{v:.0f}" for v in values) + " |")
        counts = [sum(f.quality["sharpness"] >= settings.ENROL_MIN_SHARPNESS for f in pairs)]
        counts += [
            sum(
                f.quality["sharpness"] >= settings.ENROL_MIN_SHARPNESS
                for f in blur_faces[r].values()
                if f.subset == "pairs"
            )
            for r in BLUR_RADII
        ]
        print(
            f"| {e} | pairs/ faces ≥ {settings.ENROL_MIN_SHARPNESS:g} (of {len(pairs)}) | "
            + " | ".join(str(c) for c in counts)
            + " |"
        )
    print()


if __name__ == "__main__":
    main()
