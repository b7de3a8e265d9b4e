"""The open-set decision: how often unrelated faces fall under a distance, and what that means for a search.

A 1:N search compares the probe with every face of the galleries searched, so a threshold that is safe for
one comparison shows strangers in a large gallery. The false-match rate per comparison, FMR(t), is
estimated from real impostor distances (pairs of different people); the "likely candidate" threshold for
a gallery of N faces is the largest t with N × FMR(t) ≤ OPEN_SET_EXPECTED_FALSE, never looser than the
engine's mate-based bound.

Where the pairs cannot resolve the rate needed (none of P pairs under t only shows FMR ≤ 3 / P), the
lower tail is modelled: a generalised Pareto distribution fitted to the lowest TAIL_SHARE of the impostor
distances by probability-weighted moments, its shape held at ≥ 0 so the model never assumes that the
tail ends (a bounded tail would let the threshold run up to the fitted end point). The fit is checked
against the empirical rate at the distance where the pairs still resolve it (TailFit.check).

Why the lowest fifth: on the labelled pairs of both engines the fitted shape is negative (the tail is
lighter than exponential), so with the shape held at 0 the model is heavier than the data; fitted to the
lowest fifth it lies above the empirical rate at every distance the pairs resolve (at the tenth-closest
pair about twice it), fitted to a smaller share it follows the data more closely there and falls off
faster below, where nothing can check it. Erring towards fewer strangers is the product's promise.

Nothing here touches the database: search.calibration feeds the distances in and stores the fit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# The share of impostor distances the tail model is fitted to (why a fifth: the module's docstring).
TAIL_SHARE = 0.2
# The fewest distances a tail fit rests on.
MIN_TAIL = 20
# The lowest impostor distances kept with a fit, to count the pairs under a threshold (rule of three).
KEEP_LOWEST = 2000
# The empirical check is made at the distance with this many pairs under it.
CHECK_AT_PAIRS = 10

LIKELY, NONE, LOW_QUALITY = "likely", "none", "low_quality"
DECISION_WORDS = {
    LIKELY: "Likely candidate",
    NONE: "No likely candidate",
    LOW_QUALITY: "Too small or blurred to compare reliably",
}
METHOD = "generalised Pareto fit to the lowest 20 % of impostor distances (probability-weighted moments, shape ≥ 0)"


class TooFewPairs(ValueError):
    """Not enough impostor distances to fit the tail."""


@dataclass(frozen=True)
class TailFit:
    """A model of the lower tail of the impostor distances of one engine."""

    pairs: int  # impostor distances the fit was made from
    tail: int  # how many of them lie under `start`
    start: float  # the tail model covers distances under this
    shape: float  # generalised Pareto ξ (≥ 0)
    scale: float  # generalised Pareto σ
    lowest: tuple[float, ...]  # the lowest distances, ascending (at most KEEP_LOWEST)

    def fmr(self, distance: float) -> float:
        """The modelled share of impostor pairs at or under the distance."""
        if distance >= self.start:
            return (
                self.empirical(distance)
                if distance <= self.lowest[-1]
                else max(self.tail / self.pairs, self.empirical(distance))
            )
        excess = self.start - distance
        if self.shape == 0:
            survival = math.exp(-excess / self.scale)
        else:
            survival = (1 + self.shape * excess / self.scale) ** (-1 / self.shape)
        return self.tail / self.pairs * survival

    def distance_at(self, fmr: float) -> float:
        """The distance under which the modelled share of impostor pairs is `fmr`."""
        share = self.tail / self.pairs
        if fmr >= share:
            return self.start
        ratio = fmr / share
        if self.shape == 0:
            return self.start + self.scale * math.log(ratio)
        return self.start - self.scale / self.shape * (ratio ** (-self.shape) - 1)

    def under(self, distance: float) -> int:
        """Impostor pairs at or under the distance (exact while the distance is within the kept lowest)."""
        return int(np.searchsorted(np.asarray(self.lowest), distance, side="right"))

    def empirical(self, distance: float) -> float:
        return self.under(distance) / self.pairs

    def rule_of_three(self, distance: float) -> float | None:
        """With no impostor pair under the distance, the 95 % upper bound of the rate, 3 / pairs."""
        return 3 / self.pairs if self.under(distance) == 0 else None

    def check(self) -> dict:
        """The fit against the empirical rate where the pairs resolve it (CHECK_AT_PAIRS pairs under)."""
        if len(self.lowest) < CHECK_AT_PAIRS:
            return {}
        at = self.lowest[CHECK_AT_PAIRS - 1]
        return {"distance": round(at, 4), "empirical": CHECK_AT_PAIRS / self.pairs, "fitted": self.fmr(at)}

    def as_json(self) -> dict:
        data = asdict(self)
        data["lowest"] = [round(v, 5) for v in self.lowest]
        return data

    @classmethod
    def from_json(cls, data: dict) -> TailFit:
        return cls(**{**data, "lowest": tuple(data["lowest"])})


def tail_fit(distances, *, total: int | None = None) -> TailFit:
    """Fit the lower tail of impostor distances (any order). `total`: how many pairs there were, when
    `distances` holds only the lowest of them (at least the lowest TAIL_SHARE). TooFewPairs when too few."""
    values = np.sort(np.asarray(distances, dtype=np.float64))
    pairs = len(values) if total is None else int(total)
    tail = max(MIN_TAIL, int(pairs * TAIL_SHARE))
    if len(values) <= tail or pairs <= tail:
        raise TooFewPairs(f"{pairs} impostor distances; a tail fit needs more than {tail}.")
    start = float(values[tail])
    excesses = np.sort(start - values[:tail])  # ascending
    # Hosking & Wallis (1987): a0 = mean, a1 = mean of excesses weighted by the share above each.
    a0 = float(excesses.mean())
    weights = (tail - 1 - np.arange(tail)) / (tail - 1)
    a1 = float(np.mean(weights * excesses))
    k = a0 / (a0 - 2 * a1) - 2  # Hosking's k = −ξ
    scale = 2 * a0 * a1 / (a0 - 2 * a1)
    shape = max(-k, 0.0)
    if shape == 0:
        scale = a0  # the exponential tail's maximum-likelihood scale
    return TailFit(
        pairs=pairs,
        tail=tail,
        start=start,
        shape=round(shape, 6),
        scale=round(max(scale, 1e-6), 6),
        lowest=tuple(float(v) for v in values[:KEEP_LOWEST]),
    )


@dataclass(frozen=True)
class Threshold:
    """The "likely candidate" threshold of one engine for a gallery size, and what it rests on."""

    engine: str
    distance: float
    gallery_faces: int
    expected_false: float  # N × FMR(distance) by the fit
    fmr: float
    fmr_rule_of_three: float | None
    mate_bound: float
    capped_by_mate_bound: bool
    labelled_pairs: int
    gallery_pairs: int
    calibration_id: int | None = None
    version: int | None = None
    method: str = METHOD

    def as_json(self) -> dict:
        return {key: (round(v, 6) if isinstance(v, float) else v) for key, v in asdict(self).items()}


def threshold_for(
    fit: TailFit,
    *,
    engine: str,
    gallery_faces: int,
    expected_false: float,
    mate_bound: float,
    labelled_pairs: int,
    gallery_pairs: int,
    calibration_id: int | None = None,
    version: int | None = None,
) -> Threshold:
    """The largest distance with gallery_faces × FMR ≤ expected_false, at most the engine's mate bound."""
    faces = max(int(gallery_faces), 1)
    # Never below 0: where the model asks for a rate no distance reaches, no candidate is likely.
    calibrated = max(fit.distance_at(expected_false / faces), 0.0)
    distance = min(calibrated, mate_bound)
    return Threshold(
        engine=engine,
        distance=round(distance, 4),
        gallery_faces=faces,
        expected_false=faces * fit.fmr(distance),
        fmr=fit.fmr(distance),
        fmr_rule_of_three=fit.rule_of_three(distance),
        mate_bound=mate_bound,
        capped_by_mate_bound=calibrated >= mate_bound,
        labelled_pairs=labelled_pairs,
        gallery_pairs=gallery_pairs,
        calibration_id=calibration_id,
        version=version,
    )


def face_decision(*, usable: bool, compared) -> str:
    """One decision wherever faces are matched: likely, none, or low quality.

    `compared`: (distance, threshold) of each candidate, the threshold the calibrated one of the engine
    that found it. A face below the quality floors is never a likely match, whatever its distance; a face
    of usable quality is a likely match when a candidate is at or under its threshold.
    """
    if not usable:
        return LOW_QUALITY
    return LIKELY if any(distance <= threshold for distance, threshold in compared) else NONE
