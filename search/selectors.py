"""Reads for galleries, probes, search jobs and profiles, always scoped to an agency.

Another agency's object is a 404, never a 403: a user must not learn that it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import connection
from django.db.models import Count, Min, Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from accounts.selectors import agency_policy
from portal.models import AuditEntry
from search import lawful_use
from search.faces import engine_is_match, engine_threshold, engine_thresholds, quality_usable
from search.gallery_scope import galleries_searchable_by
from search.models import (
    Candidate,
    CaseAuthorisation,
    FaceImage,
    Gallery,
    LeadReview,
    Probe,
    ProbeFace,
    ProbeVideo,
    Profile,
    SearchJob,
    SubjectRequest,
)
from search.open_set import DECISION_WORDS, LIKELY, LOW_QUALITY, NONE


def job_threshold(job: SearchJob, engine: str) -> float:
    """The likely-candidate threshold the search used for that engine (searches from before thresholds
    were calibrated: the fixed bound they ran under)."""
    recorded = (job.thresholds or {}).get(engine)
    return recorded["distance"] if recorded else engine_threshold(engine)


def candidate_threshold(candidate: Candidate) -> float:
    """The likely-candidate threshold of the engine the candidate was found with, in its search."""
    return job_threshold(candidate.job, candidate.found_with)


def candidate_is_match(candidate: Candidate) -> bool:
    """Presented as a likely candidate: the search's decision, recorded with the candidate."""
    if candidate.erased_at:
        return False
    if candidate.likely is not None:
        return candidate.likely
    return engine_is_match(engine=candidate.found_with, distance=candidate.distance)


def candidate_strength(candidate: Candidate) -> tuple[str, str]:
    """A candidate's standing in plain words: (key, label)."""
    if candidate_is_match(candidate):
        return "likely", "Likely candidate"
    if candidate.probe_face.decision == LOW_QUALITY:
        return "low_quality", "For an examiner only: the probe face is too small or blurred to compare reliably"
    return "weak", "Above the likely-candidate threshold"


# What a candidate's row shows: its search, probe face, profile and gallery, face and review.
CANDIDATE_ROW = (
    "job",
    "probe_face",
    "profile",
    "profile__gallery",
    "face_image",
    "review",
    "review__proposed_by",
    "review__reviewed_by",
)


def search_job_candidates(*, job: SearchJob) -> QuerySet[Candidate]:
    return Candidate.objects.filter(job=job).select_related(*CANDIDATE_ROW).order_by("probe_face__index", "rank")


def search_job_result(*, job: SearchJob) -> dict:
    """The job as the search_photo contract prints it."""
    faces = []
    candidates = list(search_job_candidates(job=job))
    for probe_face in job.probe.faces.order_by("index"):
        quality = probe_face.quality or {}
        faces.append(
            {
                "box": list(probe_face.box),
                "quality": {
                    "eye_distance_px": quality.get("eye_distance_px"),
                    "sharpness": quality.get("sharpness"),
                    "usable": quality_usable(quality),
                },
                "decision": probe_face.decision or _legacy_decision(probe_face, candidates),
                "threshold": round(job_threshold(job, probe_face.engine), 4),
                "candidates": [
                    {
                        "rank": c.rank,
                        "profile": c.profile.display_name if c.profile else "(erased)",
                        "profile_id": c.profile_id,
                        "distance": round(c.distance, 4),
                        "match": candidate_is_match(c),
                    }
                    for c in candidates
                    if c.probe_face_id == probe_face.id
                ],
            }
        )
    return {
        "job": job.id,
        "status": job.status,
        "error": job.error or None,
        "faces": faces if job.status == SearchJob.Status.DONE else [],
    }


def _legacy_decision(probe_face: ProbeFace, candidates: list[Candidate]) -> str:
    """The decision of a face searched before decisions were recorded, by the rule it ran under."""
    own = [c for c in candidates if c.probe_face_id == probe_face.id]
    return LIKELY if any(candidate_is_match(c) for c in own) else NONE


# --- Scoped getters for the pages ------------------------------------------------------------


def probe_get(*, user: User, code: UUID) -> Probe:
    return get_object_or_404(Probe.objects.select_related("case"), code=code, agency_id=user.agency_id)


def job_get(*, user: User, code: UUID) -> SearchJob:
    return get_object_or_404(
        SearchJob.objects.select_related("probe", "probe__case", "started_by"), code=code, agency_id=user.agency_id
    )


def jobs_for_case(*, case) -> QuerySet[SearchJob]:
    return (
        SearchJob.objects.filter(probe__case=case, agency_id=case.agency_id)
        .select_related("probe", "started_by")
        .annotate(likely_count=Count("candidates", filter=likely_candidate_rule(candidate="candidates__", job="")))
        .order_by("-created_at")
    )


def likely_candidate_rule(*, candidate: str = "", job: str = "job__") -> Q:
    """candidate_is_match as a query filter: the recorded decision, or for rows from before it was recorded,
    the fixed bound of the engine they were found with (theirs, or else the job's). `candidate` and `job`
    are the lookups' prefixes from the model queried (a Candidate: "" and "job__"; a SearchJob:
    "candidates__" and "")."""
    legacy = Q()
    for engine, threshold in engine_thresholds().items():
        found_with = Q(**{f"{candidate}engine": engine}) | Q(**{f"{candidate}engine": "", f"{job}engine": engine})
        legacy |= found_with & Q(**{f"{candidate}distance__lte": threshold})
    unrecorded = Q(**{f"{candidate}likely__isnull": True, f"{candidate}erased_at__isnull": True})
    return Q(**{f"{candidate}likely": True}) | (unrecorded & legacy)


def recent_jobs(*, user: User, limit: int = 8) -> QuerySet[SearchJob]:
    return (
        SearchJob.objects.filter(agency_id=user.agency_id, started_by=user)
        .select_related("probe", "probe__case")
        .order_by("-created_at")[:limit]
    )


def probe_face_get(*, user: User, job_code: UUID, index: int) -> ProbeFace:
    job = job_get(user=user, code=job_code)
    return get_object_or_404(ProbeFace, probe_id=job.probe_id, index=index)


def profiles_visible_to(*, user: User) -> QuerySet[Profile]:
    return Profile.objects.filter(gallery__in=galleries_searchable_by(agency_id=user.agency_id))


def profile_get(*, user: User, code: UUID) -> Profile:
    return get_object_or_404(profiles_visible_to(user=user).select_related("gallery", "gallery__owner"), code=code)


def face_image_get(*, user: User, code: UUID) -> FaceImage:
    return get_object_or_404(
        FaceImage.objects.filter(gallery__in=galleries_searchable_by(agency_id=user.agency_id)), code=code
    )


def profile_searches(*, user: User, profile: Profile) -> QuerySet[Candidate]:
    """Which of the user's agency's searches returned this profile."""
    return (
        Candidate.objects.filter(profile=profile, job__agency_id=user.agency_id)
        .select_related("job", "job__probe__case", "job__started_by", "probe_face")
        .order_by("-job__created_at")
    )


@dataclass(frozen=True)
class ThresholdContext:
    """What a search's likely-candidate threshold rests on, for the page (open_set.Threshold as recorded)."""

    engine: str
    distance: float
    gallery_faces: int
    expected_false: float
    fmr: float
    fmr_rule_of_three: float | None
    labelled_pairs: int
    gallery_pairs: int
    capped_by_mate_bound: bool
    version: int | None
    method: str

    @property
    def calibrated(self) -> bool:
        return self.version is not None

    @classmethod
    def of(cls, job: SearchJob, engine: str) -> ThresholdContext:
        recorded = (job.thresholds or {}).get(engine)
        if not recorded:
            # A search from before thresholds were calibrated: the engine's fixed bound.
            return cls(engine, job.threshold, 0, 0.0, 0.0, None, 0, 0, True, None, "")
        return cls(**{field: recorded.get(field) for field in cls.__dataclass_fields__})


@dataclass
class ResultFace:
    probe_face: ProbeFace
    candidates: list[Candidate]
    threshold: ThresholdContext

    @property
    def likely(self) -> list[Candidate]:
        return [c for c in self.candidates if candidate_is_match(c)]

    @property
    def decision(self) -> str:
        return self.probe_face.decision or _legacy_decision(self.probe_face, self.candidates)

    @property
    def decision_words(self) -> str:
        return DECISION_WORDS[self.decision]

    @property
    def quality(self) -> dict:
        return self.probe_face.quality or {}

    @property
    def likely_first(self) -> list[Candidate]:
        """Likely candidates, then the rest, each by rank."""
        return sorted(self.candidates, key=lambda c: (not candidate_is_match(c), c.rank))


def job_result_faces(*, job: SearchJob) -> list[ResultFace]:
    candidates = list(search_job_candidates(job=job))
    return [
        ResultFace(
            probe_face=face,
            candidates=[c for c in candidates if c.probe_face_id == face.id],
            threshold=ThresholdContext.of(job, face.engine),
        )
        for face in job.probe.faces.order_by("index")
    ]


def searchable_face_count(*, agency_id: int) -> int:
    """How many gallery faces the agency's searches compare with (0: nothing to search yet)."""
    return FaceImage.objects.filter(gallery__in=galleries_searchable_by(agency_id=agency_id)).count()


def candidate_get(*, user: User, job_code: UUID, face_index: int, rank: int) -> Candidate:
    job = job_get(user=user, code=job_code)
    return get_object_or_404(
        Candidate.objects.select_related(*CANDIDATE_ROW, "job__probe__case"),
        job=job,
        probe_face__index=face_index,
        rank=rank,
    )


def confirmed_leads(*, case) -> QuerySet[LeadReview]:
    return (
        LeadReview.objects.filter(
            status=LeadReview.Status.CONFIRMED,
            candidate__job__probe__case=case,
            candidate__job__agency_id=case.agency_id,
        )
        .select_related(
            "candidate",
            "candidate__job",
            "candidate__probe_face",
            "candidate__profile",
            "candidate__face_image",
            "proposed_by",
            "reviewed_by",
        )
        .order_by("-reviewed_at")
    )


# --- Operations figures: counts over every agency for health checks and metrics, never a case or a person ---


def gallery_engines_in_use() -> set[str]:
    """The engines some gallery is searched with."""
    return set(Gallery.objects.values_list("engine", flat=True).distinct())


def search_job_status_counts() -> dict[str, int]:
    """Search jobs in each status, every status present (0 when none)."""
    counts = dict(SearchJob.objects.order_by().values_list("status").annotate(jobs=Count("pk")))
    return {status: counts.get(status, 0) for status in SearchJob.Status.values}


def search_job_oldest_queued_at():
    """When the longest-waiting queued job was created; None when nothing is queued."""
    return (
        SearchJob.objects.filter(status=SearchJob.Status.QUEUED)
        .order_by()
        .aggregate(oldest=Min("created_at"))["oldest"]
    )


def search_stage_histogram(
    *, stages: tuple[str, ...], bounds_ms: tuple[float, ...], finished_from=None, finished_before=None
) -> dict[str, dict]:
    """Per stage of SearchJob.stage_ms, over the jobs finished in [finished_from, finished_before) (either end
    open when None): the number of jobs at or under each bound (cumulative), the number of jobs and the sum,
    in milliseconds. One pass that reads each job's timings once, rather than once per bound."""
    buckets = ", ".join("count(*) FILTER (WHERE stage.ms <= %s)" for _ in bounds_ms)
    sql = (
        f"SELECT stage.key, count(*), coalesce(sum(stage.ms), 0), {buckets} "
        f"FROM {SearchJob._meta.db_table} AS job, "
        "LATERAL (SELECT key, value::float AS ms FROM jsonb_each_text(job.stage_ms)) AS stage "
        "WHERE job.finished_at IS NOT NULL AND job.finished_at >= coalesce(%s, '-infinity'::timestamptz) "
        "AND job.finished_at < coalesce(%s, 'infinity'::timestamptz) AND stage.key = ANY(%s) "
        "GROUP BY stage.key"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*bounds_ms, finished_from, finished_before, list(stages)])
        rows = {key: (count, total, list(counts)) for key, count, total, *counts in cursor.fetchall()}
    none = (0, 0.0, [0] * len(bounds_ms))
    return {stage: dict(zip(("count", "sum", "buckets"), rows.get(stage, none), strict=True)) for stage in stages}


# --- Data-subject requests (the platform's privacy officer: every agency's galleries, so not agency-scoped) ---


def subject_request_queue() -> QuerySet[SubjectRequest]:
    """Every data-subject request, open ones first, the soonest due first."""
    return SubjectRequest.objects.order_by("status", "due_at")


def tombstone_hits_recent(*, limit: int = 20) -> QuerySet[AuditEntry]:
    """The latest refused enrolments of an erased face."""
    return AuditEntry.objects.filter(action=AuditEntry.Action.TOMBSTONE_HIT).order_by("-id")[:limit]


def subject_request_get(*, reference: str) -> SubjectRequest:
    return get_object_or_404(SubjectRequest, reference=reference)


def subject_request_matches(*, subject_request: SubjectRequest) -> list[dict]:
    """The request's matched profiles, each with the first face enrolled for it (None if none is left)."""
    matched_ids = [match["profile_id"] for match in subject_request.matches]
    faces: dict[int, FaceImage] = {}
    for face in FaceImage.objects.filter(profile_id__in=matched_ids).order_by("created_at"):
        faces.setdefault(face.profile_id, face)
    return [match | {"face": faces.get(match["profile_id"])} for match in subject_request.matches]


def subject_request_match_face_get(*, subject_request: SubjectRequest, face_code: UUID) -> FaceImage:
    # 404 for any face that is not of a profile this request matched.
    return get_object_or_404(
        FaceImage, code=face_code, profile_id__in=[match["profile_id"] for match in subject_request.matches]
    )


# --- The review queue: proposals waiting for a supervisor, and an officer's own proposals -----

REVIEW_ROW = (
    "candidate",
    "candidate__job",
    "candidate__job__probe__case",
    "candidate__probe_face",
    "candidate__profile",
    "candidate__face_image",
    "proposed_by",
    "reviewed_by",
)


@dataclass(frozen=True)
class ReviewRow:
    """A lead review as the queue shows it, with the search's decision for the candidate's probe face."""

    review: LeadReview

    @property
    def candidate(self) -> Candidate:
        return self.review.candidate

    @property
    def face_decision(self) -> str:
        return self.review.candidate.probe_face.decision

    @property
    def face_decision_words(self) -> str:
        # Faces searched before decisions were recorded have none; the queue does not re-derive it.
        return DECISION_WORDS.get(self.face_decision, "Searched before decisions were recorded")


def _lead_reviews_waiting(*, agency_id: int) -> QuerySet[LeadReview]:
    return LeadReview.objects.filter(
        status=LeadReview.Status.POSSIBLE_LEAD, reviewed_by__isnull=True, candidate__job__agency_id=agency_id
    )


def lead_reviews_waiting(*, user: User) -> list[ReviewRow]:
    """The proposals of the user's agency waiting for a supervisor's decision, oldest first."""
    reviews = _lead_reviews_waiting(agency_id=user.agency_id).select_related(*REVIEW_ROW).order_by("proposed_at", "id")
    return [ReviewRow(review) for review in reviews]


def lead_reviews_waiting_count(*, user: User) -> int:
    """How many proposals of the user's agency wait for a supervisor (one COUNT, for the header)."""
    return _lead_reviews_waiting(agency_id=user.agency_id).count()


def lead_reviews_proposed_by(*, user: User) -> list[ReviewRow]:
    """The user's own proposals of possible leads and what became of them, newest first."""
    reviews = (
        LeadReview.objects.filter(
            proposed_by=user,
            candidate__job__agency_id=user.agency_id,
            # An excluded candidate is no proposal: nobody is asked to review it.
            status__in=[LeadReview.Status.POSSIBLE_LEAD, LeadReview.Status.CONFIRMED, LeadReview.Status.REJECTED],
        )
        .select_related(*REVIEW_ROW)
        .order_by("-proposed_at", "-id")
    )
    return [ReviewRow(review) for review in reviews]


def video_get(*, user: User, code: UUID) -> ProbeVideo:
    # 404, not 403: a user must not learn that another agency's video exists.
    videos = ProbeVideo.objects.select_related("case", "uploaded_by", "offense_category")
    return get_object_or_404(videos, code=code, agency_id=user.agency_id)


def videos_for_case(*, case) -> QuerySet[ProbeVideo]:
    return ProbeVideo.objects.filter(case=case, agency_id=case.agency_id).select_related("uploaded_by")


# --- Lawful use (search/lawful_use.py) --------------------------------------------------------------------


def case_lawful_use(*, case) -> dict:
    """What the case page shows of the agency's policy: the case's authorisations, newest first, and whether the
    case may search now (and if not, why)."""
    policy = agency_policy(agency_id=case.agency_id)
    history = list(
        case.authorisations.select_related("requested_by", "recorded_by").prefetch_related(
            "galleries", "offense_categories"
        )
    )
    try:
        lawful_use.case_search_check(case=case, category=None)
        blocked = ""
    except lawful_use.UseRefused as exc:
        blocked = str(exc)
    current = history[0] if history else None
    return {
        "policy": policy,
        "current": current,
        "current_words": lawful_use.authorisation_words(current) if current else "",
        "history": history,
        "blocked": blocked,
        "answer_open": current is None or current.status != CaseAuthorisation.Status.REFUSED,
    }


def authorisation_requests_open(*, agency_id: int) -> QuerySet[CaseAuthorisation]:
    """The agency's requests still waiting for the authority's answer, the soonest window end first."""
    return (
        CaseAuthorisation.objects.filter(agency_id=agency_id, status=CaseAuthorisation.Status.REQUESTED)
        .select_related("case", "requested_by")
        .order_by("window_ends_at")
    )


def authorisations_of_agency(*, agency_id: int, limit: int = 50) -> QuerySet[CaseAuthorisation]:
    return (
        CaseAuthorisation.objects.filter(agency_id=agency_id)
        .select_related("case", "requested_by", "recorded_by")
        .order_by("-created_at", "-id")[:limit]
    )


def authorisation_get(*, user: User, code: UUID) -> CaseAuthorisation:
    return get_object_or_404(CaseAuthorisation, code=code, agency_id=user.agency_id)
