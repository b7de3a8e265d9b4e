"""The structured comparison record: the FISWG facial feature list and a fixed conclusion scale with no
"identification" level (a comparison supports a lead or not; it never identifies).

Blind verification lives here too, as reads: what of a candidate's records one user may see. The writes
(recording, proposing, deciding) are in search/leads.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from accounts.models import Role, User
from search.models import Candidate, ComparisonRecord, FaceImage, LeadReview

# The FISWG facial comparison feature list, at the level of detail an examiner records for a lead. Each one
# must be given a value: "not visible" is an answer, a blank is not.
FEATURES: tuple[tuple[str, str], ...] = (
    ("face_shape", "Face shape"),
    ("eyes", "Eyes"),
    ("nose", "Nose"),
    ("mouth", "Mouth"),
    ("ears", "Ears"),
    ("marks", "Marks (scars, marks, tattoos)"),
)
FEATURE_LABELS = dict(FEATURES)

SIMILAR, DIFFERENT, NOT_VISIBLE = "similar", "different", "not_visible"
VALUES: tuple[tuple[str, str], ...] = ((SIMILAR, "Similar"), (DIFFERENT, "Different"), (NOT_VISIBLE, "Not visible"))
VALUE_LABELS = dict(VALUES)

# The conclusion scale, strongest support first. There is no "identification" level on purpose.
STRONGLY_SUPPORTS, SUPPORTS, INCONCLUSIVE, DOES_NOT_SUPPORT, EXCLUDED = (
    "strongly_supports",
    "supports",
    "inconclusive",
    "does_not_support",
    "excluded",
)
CONCLUSIONS: tuple[tuple[str, str], ...] = (
    (STRONGLY_SUPPORTS, "Strongly supports a lead"),
    (SUPPORTS, "Supports a lead"),
    (INCONCLUSIVE, "Inconclusive"),
    (DOES_NOT_SUPPORT, "Does not support a lead"),
    (EXCLUDED, "Excluded"),
)
CONCLUSION_LABELS = dict(CONCLUSIONS)
# What a proposal as a possible lead, and a confirmation, need; an exclusion needs one of the others.
SUPPORTING = frozenset({STRONGLY_SUPPORTS, SUPPORTS})
NOT_SUPPORTING = frozenset({INCONCLUSIVE, DOES_NOT_SUPPORT, EXCLUDED})

# The form's field names: one radio group per feature, the conclusion, the notes.
FEATURE_FIELD_PREFIX = "feature_"

# What each engine's landmark points are, in its own order (YuNet: the subject's right eye first).
LANDMARK_NAMES: dict[str, tuple[str, ...]] = {
    "yunet-sface-int8": ("Right eye", "Left eye", "Nose tip", "Right mouth corner", "Left mouth corner"),
    "dlib-resnet-v1": ("Eye corner", "Eye corner", "Eye corner", "Eye corner", "Below the nose"),
}


class ComparisonInvalid(ValueError):
    """A record naming a feature, value or conclusion that is not on the list: a forged or stale form."""


@dataclass(frozen=True)
class ComparisonEntry:
    """One examiner's comparison as entered, before it is stored; blanks are allowed here and reported by
    `errors()`, unknown names are not (ComparisonInvalid)."""

    features: Mapping[str, str]
    conclusion: str = ""
    notes: str = ""

    def __post_init__(self):
        unknown = set(self.features) - set(FEATURE_LABELS)
        if unknown:
            raise ComparisonInvalid(f"Unknown feature: {', '.join(sorted(unknown))}.")
        for feature, value in self.features.items():
            if value and value not in VALUE_LABELS:
                raise ComparisonInvalid(f"Unknown value for {FEATURE_LABELS[feature]}: {value!r}.")
        if self.conclusion and self.conclusion not in CONCLUSION_LABELS:
            raise ComparisonInvalid(f"Unknown conclusion: {self.conclusion!r}.")

    def errors(self) -> dict[str, str]:
        """Field name → what is missing; empty when every feature and the conclusion have a value."""
        errors = {
            FEATURE_FIELD_PREFIX + feature: f"Choose similar, different or not visible for {label.lower()}."
            for feature, label in FEATURES
            if not self.features.get(feature)
        }
        if not self.conclusion:
            errors["conclusion"] = "Choose a conclusion on the scale."
        return errors


def comparison_from_form(data: Mapping[str, str]) -> ComparisonEntry:
    """The entry a posted comparison form holds (raises ComparisonInvalid for names not on the list)."""
    return ComparisonEntry(
        features={
            name.removeprefix(FEATURE_FIELD_PREFIX): data.get(name, "")
            for name in data
            if name.startswith(FEATURE_FIELD_PREFIX)
        },
        conclusion=data.get("conclusion", ""),
        notes=data.get("notes", "").strip(),
    )


def comparison_entry_of(record: ComparisonRecord) -> ComparisonEntry:
    """A stored record as an entry, to fill the form again (the proposer may revise theirs)."""
    return ComparisonEntry(features=record.features, conclusion=record.conclusion, notes=record.notes)


def landmark_points(landmarks: Iterable, engine: str) -> list[dict]:
    """The points of a face for the overlay: x, y in its photo and what each one is."""
    names = LANDMARK_NAMES.get(engine, ())
    return [
        {"x": x, "y": y, "label": names[i] if i < len(names) else f"Landmark {i + 1}"}
        for i, (x, y) in enumerate(landmarks or [])
    ]


# --- Reads: the records of candidates, and what of them one user may see -----------------------------


def comparison_records_for(candidate_ids: Iterable[int]) -> dict[int, dict[str, ComparisonRecord]]:
    """Candidate id → role → record, with the examiners, in one query. The caller has scoped the ids to
    the user's agency (the case page, the case report)."""
    by_candidate: dict[int, dict[str, ComparisonRecord]] = {}
    for record in ComparisonRecord.objects.filter(candidate_id__in=list(candidate_ids)).select_related("examiner"):
        by_candidate.setdefault(record.candidate_id, {})[record.role] = record
    return by_candidate


@dataclass(frozen=True)
class FeatureRow:
    """One line of the two records side by side."""

    label: str
    first: str
    second: str

    @property
    def agree(self) -> bool:
        return bool(self.first) and self.first == self.second


@dataclass(frozen=True)
class RecordsShown:
    """What one user may see of a candidate's comparison records.

    While a proposal waits, the first examiner's record, conclusion and note are hidden from everyone but
    its author and the verifier who has saved their own (`hidden` says why); once decided, both are shown.
    """

    hidden: str
    first: ComparisonRecord | None
    second: ComparisonRecord | None
    mine: ComparisonRecord | None
    # The user is the one to verify blind: a supervisor, not the proposer, and nobody has recorded as verifier.
    blind: bool = False

    @property
    def compared(self) -> bool:
        """Both examiners' structured records are shown, to set side by side."""
        return self.first is not None and self.second is not None

    @property
    def mine_supports(self) -> bool:
        return self.mine is not None and self.mine.conclusion in SUPPORTING

    @property
    def rows(self) -> list[FeatureRow]:
        first = self.first.features if self.first else {}
        second = self.second.features if self.second else {}
        return [
            FeatureRow(label, VALUE_LABELS.get(first.get(key, ""), ""), VALUE_LABELS.get(second.get(key, ""), ""))
            for key, label in FEATURES
        ]

    @property
    def conclusions(self) -> FeatureRow:
        return FeatureRow(
            "Conclusion",
            CONCLUSION_LABELS.get(self.first.conclusion, "") if self.first else "",
            CONCLUSION_LABELS.get(self.second.conclusion, "") if self.second else "",
        )


def first_record_hidden_because(
    *, user: User, review: LeadReview | None, records: Mapping[str, ComparisonRecord]
) -> str:
    """Why the first examiner's record and note are hidden from this user ("" when they may see them)."""
    if review is None or review.proposed_by_id == user.id or review.status != LeadReview.Status.POSSIBLE_LEAD:
        return ""
    verifier = records.get(ComparisonRecord.Role.VERIFIER)
    if verifier is not None and verifier.examiner_id == user.id:
        return ""
    if verifier is not None:
        return (
            f"{verifier.examiner.username} is verifying this proposal; both records are shown to everyone once "
            "the lead is confirmed or rejected."
        )
    if user.role == Role.SUPERVISOR:
        return (
            "Record your own comparison and conclusion first: the first examiner's record, conclusion and note "
            "are shown to you once yours is saved."
        )
    return "The first examiner's record stays hidden until a supervisor has verified the proposal blind."


def records_shown(*, user: User, review: LeadReview | None, records: Mapping[str, ComparisonRecord]) -> RecordsShown:
    """The records of one candidate as this user may see them."""
    hidden = first_record_hidden_because(user=user, review=review, records=records)
    first = records.get(ComparisonRecord.Role.PROPOSER)
    second = records.get(ComparisonRecord.Role.VERIFIER)
    mine = next((record for record in records.values() if record.examiner_id == user.id), None)
    return RecordsShown(
        hidden=hidden,
        first=None if hidden else first,
        second=None if hidden else second,
        mine=mine,
        blind=bool(hidden) and user.role == Role.SUPERVISOR and second is None,
    )


def records_shown_for(*, user: User, reviews: Iterable[LeadReview]) -> dict[int, RecordsShown]:
    """Candidate id → what this user may see of its records, for a list of reviews (one query)."""
    reviews = list(reviews)
    records = comparison_records_for(review.candidate_id for review in reviews)
    return {
        review.candidate_id: records_shown(user=user, review=review, records=records.get(review.candidate_id, {}))
        for review in reviews
    }


def profile_photos(candidate: Candidate) -> list[FaceImage]:
    """The photos of the candidate's profile to compare with, the candidate's own first: one per photo (a
    re-embedded gallery holds a photo once per engine; its current engine's row is shown)."""
    profile = candidate.profile
    photos = [candidate.face_image]
    seen = {candidate.face_image.content_hash}
    for photo in profile.face_images.filter(engine=profile.gallery.engine).order_by("created_at", "id"):
        if photo.content_hash not in seen:
            seen.add(photo.content_hash)
            photos.append(photo)
    return photos


@dataclass(frozen=True)
class FormField:
    """One radio group of the record form, with its current value and its error."""

    name: str
    label: str
    value: str
    error: str
    choices: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ComparisonForm:
    """The record form as shown: the features' radio groups, the conclusion, the notes."""

    features: list[FormField]
    conclusion: FormField
    notes: str

    @classmethod
    def of(cls, entry: ComparisonEntry | None = None, errors: Mapping[str, str] | None = None) -> ComparisonForm:
        entry, errors = entry or ComparisonEntry(features={}), errors or {}
        return cls(
            features=[
                FormField(
                    name=FEATURE_FIELD_PREFIX + key,
                    label=label,
                    value=entry.features.get(key, ""),
                    error=errors.get(FEATURE_FIELD_PREFIX + key, ""),
                    choices=VALUES,
                )
                for key, label in FEATURES
            ],
            conclusion=FormField(
                name="conclusion",
                label="Conclusion",
                value=entry.conclusion,
                error=errors.get("conclusion", ""),
                choices=CONCLUSIONS,
            ),
            notes=entry.notes,
        )
