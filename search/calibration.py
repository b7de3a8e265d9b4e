"""Calibrating the likely-candidate threshold to each agency's galleries (search.open_set does the maths).

The impostor distances come from two places: every labelled pair of different people the product ships
(search/data/labelled_pairs.json, made by `make calibration-data` from the shared labelled photos), and
the agency's own searchable galleries (pairs of faces of different profiles, sampled up to
CALIBRATION_MAX_PAIRS). A gallery pair the labelled data alone would call a likely match may be one
person recorded twice: it is left out of the estimate and listed for the agency to review. Each fit is a
version (ThresholdCalibration); a search derives its threshold from the newest fit and the galleries'
size at that moment, and records it.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from accounts.models import Agency
from portal.audit import audit_record
from portal.models import AuditEntry
from search import index
from search.faces import ENGINES, engine_threshold
from search.gallery_scope import gallery_ids_by_engine
from search.models import Gallery, ThresholdCalibration, Tombstone
from search.open_set import KEEP_LOWEST, MIN_TAIL, TAIL_SHARE, TailFit, Threshold, tail_fit, threshold_for

LABELLED_PAIRS_FILE = Path(__file__).parent / "data" / "labelled_pairs.json"
# Possible duplicate records listed per calibration, closest first.
DUPLICATES_LISTED = 100


@functools.cache
def labelled_pairs() -> dict:
    return json.loads(LABELLED_PAIRS_FILE.read_text())


def labelled_impostors(engine: str) -> np.ndarray:
    return np.asarray(labelled_pairs()[engine]["impostors"], dtype=np.float64)


def furthest_labelled_mate(engine: str) -> float:
    return float(max(labelled_pairs()[engine]["mates"]))


def _settings_used(engine: str) -> dict:
    return {
        "OPEN_SET_EXPECTED_FALSE": settings.OPEN_SET_EXPECTED_FALSE,
        ENGINES[engine].threshold_setting: engine_threshold(engine),
        "CALIBRATION_MAX_PAIRS": settings.CALIBRATION_MAX_PAIRS,
    }


def _gallery_ids(agency_id: int | None, engine: str) -> list[int]:
    if agency_id is None:
        return list(Gallery.objects.filter(engine=engine).values_list("id", flat=True))
    return gallery_ids_by_engine(agency_id=agency_id).get(engine, [])


def _threshold(calibration: ThresholdCalibration, gallery_faces: int) -> Threshold:
    return threshold_for(
        _fit_of(calibration),
        engine=calibration.engine,
        gallery_faces=gallery_faces,
        expected_false=settings.OPEN_SET_EXPECTED_FALSE,
        mate_bound=engine_threshold(calibration.engine),
        labelled_pairs=calibration.labelled_pairs,
        gallery_pairs=calibration.gallery_pairs,
        calibration_id=calibration.id,
        version=calibration.version,
    )


def _fit_of(calibration: ThresholdCalibration) -> TailFit:
    return TailFit.from_json(calibration.fit)


def calibrate(*, agency_id: int | None, engine: str) -> ThresholdCalibration:
    """A new fit for the agency's searchable galleries of that engine (None: every gallery), audited."""
    gallery_ids = _gallery_ids(agency_id, engine)
    faces = index.gallery_faces_count(engine=engine, gallery_ids=gallery_ids)
    labelled = labelled_impostors(engine)
    labelled_only = tail_fit(labelled)
    # Pairs the labelled data alone would show as likely matches: possibly one person twice.
    duplicate_bound = threshold_for(
        labelled_only,
        engine=engine,
        gallery_faces=max(faces, 1),
        expected_false=settings.OPEN_SET_EXPECTED_FALSE,
        mate_bound=engine_threshold(engine),
        labelled_pairs=len(labelled),
        gallery_pairs=0,
    ).distance
    possible_pairs = min(settings.CALIBRATION_MAX_PAIRS, faces * (faces - 1) // 2)
    wanted = math.ceil(TAIL_SHARE * (possible_pairs + len(labelled))) + KEEP_LOWEST
    sample = index.gallery_impostor_sample(
        engine=engine, gallery_ids=gallery_ids, max_pairs=settings.CALIBRATION_MAX_PAIRS, lowest=wanted
    )
    duplicates = [row for row in sample.lowest if row[0] <= duplicate_bound]
    gallery_lowest = [row[0] for row in sample.lowest if row[0] > duplicate_bound]
    gallery_pairs = sample.pairs - len(duplicates)
    if gallery_pairs > MIN_TAIL:
        fit = tail_fit(np.concatenate([labelled, gallery_lowest]), total=len(labelled) + gallery_pairs)
    else:
        # Too few pairs of its own to say anything of their tail: the labelled pairs alone (the page says so).
        fit, gallery_pairs = labelled_only, 0
    with transaction.atomic():
        previous = (
            ThresholdCalibration.objects.select_for_update()
            .filter(agency_id=agency_id, engine=engine)
            .order_by("-version")
            .first()
        )
        calibration = ThresholdCalibration.objects.create(
            agency_id=agency_id,
            engine=engine,
            version=(previous.version + 1) if previous else 1,
            fit=fit.as_json(),
            labelled_pairs=len(labelled),
            gallery_pairs=gallery_pairs,
            gallery_faces=faces,
            gallery_signature=index.gallery_signature(engine=engine, gallery_ids=gallery_ids),
            possible_duplicates=[
                {"distance": round(d, 4), "profile_ids": [a, b]} for d, a, b in duplicates[:DUPLICATES_LISTED]
            ],
            fit_check=fit.check(),
            settings_used=_settings_used(engine),
            created_at=timezone.now(),
        )
        threshold = _threshold(calibration, faces)
        agency = Agency.objects.filter(pk=agency_id).first() if agency_id else None
        if previous is not None and previous.settings_used != calibration.settings_used:
            audit_record(
                action=AuditEntry.Action.THRESHOLD_SETTING_CHANGED,
                agency=agency,
                target=calibration,
                detail=f"{engine}: threshold settings changed",
                data={"before": previous.settings_used, "after": calibration.settings_used},
            )
        audit_record(
            action=AuditEntry.Action.THRESHOLD_CALIBRATED,
            agency=agency,
            target=calibration,
            detail=(
                f"{engine} v{calibration.version}: threshold {threshold.distance:.3f} for {faces} faces "
                f"({len(labelled)} labelled and {gallery_pairs} gallery impostor pairs, "
                f"{len(duplicates)} possible duplicates)"
            ),
            data={"threshold": threshold.as_json(), "possible_duplicates": len(duplicates)},
        )
    return calibration


def latest_calibration(*, agency_id: int | None, engine: str) -> ThresholdCalibration:
    """The newest fit, made now when there is none yet."""
    latest = ThresholdCalibration.objects.filter(agency_id=agency_id, engine=engine).order_by("-version").first()
    return latest or calibrate(agency_id=agency_id, engine=engine)


def search_thresholds(*, agency_id: int, galleries: dict[str, list[int]] | None = None) -> dict[str, Threshold]:
    """Per engine the agency's galleries are searched with: the likely-candidate threshold right now.
    `galleries`: gallery_ids_by_engine of the agency, when the caller has already read it."""
    problems = threshold_settings_problems()
    if problems:
        raise ImproperlyConfigured(" ".join(problems))
    thresholds = {}
    if galleries is None:
        galleries = gallery_ids_by_engine(agency_id=agency_id)
    for engine, gallery_ids in galleries.items():
        faces = index.gallery_faces_count(engine=engine, gallery_ids=gallery_ids)
        thresholds[engine] = _threshold(latest_calibration(agency_id=agency_id, engine=engine), faces)
    return thresholds


def deployment_threshold(*, engine: str) -> Threshold:
    """The threshold for a search of every gallery of the deployment (a data-subject request's)."""
    faces = index.gallery_faces_count(engine=engine, gallery_ids=_gallery_ids(None, engine))
    return _threshold(latest_calibration(agency_id=None, engine=engine), faces)


def tombstone_threshold(*, engine: str) -> Threshold:
    """The threshold for comparing a new photo with the erased faces of that engine (N = tombstones)."""
    tombstones = Tombstone.objects.filter(engine=engine).count()
    return _threshold(latest_calibration(agency_id=None, engine=engine), tombstones)


def watchlist_threshold(*, agency_id: int, engine: str, expected_enrolments: int) -> Threshold:
    """The alert threshold of a watch-list face for its whole life: the new enrolments expected before it
    expires play the gallery's part (N), and WATCHLIST_EXPECTED_FALSE_ALERTS the expected false matches'."""
    calibration = latest_calibration(agency_id=agency_id, engine=engine)
    return threshold_for(
        _fit_of(calibration),
        engine=engine,
        gallery_faces=expected_enrolments,
        expected_false=settings.WATCHLIST_EXPECTED_FALSE_ALERTS,
        mate_bound=engine_threshold(engine),
        labelled_pairs=calibration.labelled_pairs,
        gallery_pairs=calibration.gallery_pairs,
        calibration_id=calibration.id,
        version=calibration.version,
    )


def calibrations_refresh() -> list[ThresholdCalibration]:
    """Recalibrate every agency (and the deployment) whose searchable galleries changed since its last fit."""
    made = []
    scopes = [(None, engine) for engine in Gallery.objects.values_list("engine", flat=True).distinct()]
    for agency_id in Agency.objects.values_list("id", flat=True):
        scopes += [(agency_id, engine) for engine in gallery_ids_by_engine(agency_id=agency_id)]
    for agency_id, engine in scopes:
        signature = index.gallery_signature(engine=engine, gallery_ids=_gallery_ids(agency_id, engine))
        latest = ThresholdCalibration.objects.filter(agency_id=agency_id, engine=engine).order_by("-version").first()
        if latest is None or latest.gallery_signature != signature or latest.settings_used != _settings_used(engine):
            made.append(calibrate(agency_id=agency_id, engine=engine))
    return made


# The expected number of unrelated faces per search that a setting may ask for.
EXPECTED_FALSE_RANGE = (1e-6, 1.0)


def threshold_settings_problems() -> list[str]:
    """Threshold settings outside what the labelled data supports, each with the supported range.

    An engine's mate-based bound must keep every labelled mate pair under it (below the furthest, known
    mates would never be likely) and stay under the distance where 1 % of labelled impostor pairs fall
    (above it, the bound no longer limits anything a gallery could calibrate to).
    """
    problems = []
    low, high = EXPECTED_FALSE_RANGE
    if not low <= settings.OPEN_SET_EXPECTED_FALSE <= high:
        problems.append(f"OPEN_SET_EXPECTED_FALSE={settings.OPEN_SET_EXPECTED_FALSE} is outside {low:g}–{high:g}.")
    for name, entry in ENGINES.items():
        if name not in labelled_pairs():
            continue
        floor = furthest_labelled_mate(name)
        ceiling = float(np.percentile(labelled_impostors(name), 1))
        if not floor <= entry.threshold <= ceiling:
            problems.append(
                f"{entry.threshold_setting}={entry.threshold} is outside what the labelled pairs support for "
                f"{name}: {floor:.3f}–{ceiling:.3f} (the furthest mate pair – the 1st percentile of impostor pairs)."
            )
    return problems
