"""The API's searches, candidates and lead decisions: the same selectors and services as the pages."""

from __future__ import annotations

from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.response import Response

from accounts.api_auth import AgencyTokenUser
from accounts.models import Role
from portal import selectors as case_selectors
from portal.access import audit_view
from portal.api import LIST_FILTERS, ApiView, Refused, filter_listing, paginated, paginated_schema, problem_responses
from portal.client_address import client_address
from portal.models import AuditEntry
from search import comparison, lawful_use, leads, lineup, selectors
from search.enrolment import GalleryRefused, gallery_photos_enrol
from search.forms import MAX_PHOTOS_PER_UPLOAD
from search.imaging import PhotoRejected, photo_size_check
from search.lineup_api import EvidenceSerializer
from search.models import Candidate, Gallery, LeadReview, OffenseCategory, SearchJob
from search.services import SearchRefused, probe_submit

# --- Searches -----------------------------------------------------------------------------------------------


class SearchSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    case = serializers.UUIDField(source="probe.case.code", read_only=True)
    purpose = serializers.CharField(source="offense_category.name", default=None, read_only=True)
    started_by = serializers.CharField(source="started_by.username", read_only=True)
    finished = serializers.BooleanField(source="is_finished", read_only=True)
    url = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()
    authorised_under = serializers.SerializerMethodField(
        help_text="The authorisation the search ran under (the agency's policy: docs/lawful-use.md)"
    )

    class Meta:
        model = SearchJob
        fields = [
            "id",
            "case",
            "status",
            "stage",
            "finished",
            "error",
            "purpose",
            "sensitive",
            "top_k",
            "started_by",
            "created_at",
            "finished_at",
            "url",
            "results_url",
            "authorised_under",
        ]
        read_only_fields = fields

    def get_url(self, job) -> str:
        return reverse("api:search-detail", kwargs={"code": job.code})

    def get_authorised_under(self, job) -> str:
        return lawful_use.authorisation_words(job.authorisation)

    def get_results_url(self, job) -> str:
        return reverse("api:search-results", kwargs={"code": job.code})


class SearchSubmitSerializer(serializers.Serializer):
    photo = serializers.FileField(help_text="JPEG, PNG or WebP, at most 20 MB")
    purpose = serializers.CharField(help_text="An active offense category (its name)")
    justification = serializers.CharField(help_text="Why the search is needed for this case (≥ 20 characters)")
    sensitive = serializers.BooleanField(required=False, default=False)
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=50, allow_null=True, default=None)


class ResultCandidateSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    profile = serializers.CharField()
    profile_id = serializers.IntegerField(allow_null=True)
    distance = serializers.FloatField()
    match = serializers.BooleanField()
    url = serializers.CharField(help_text="The candidate, to compare and decide on")
    review = serializers.CharField(allow_null=True, help_text="possible_lead, excluded, confirmed, rejected or null")


class ResultQualitySerializer(serializers.Serializer):
    eye_distance_px = serializers.FloatField(allow_null=True)
    sharpness = serializers.FloatField(allow_null=True)
    usable = serializers.BooleanField()


class ResultFaceSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The probe face's number, in candidate URLs")
    box = serializers.ListField(child=serializers.IntegerField())
    quality = ResultQualitySerializer()
    decision = serializers.CharField()
    threshold = serializers.FloatField()
    candidates = ResultCandidateSerializer(many=True)


class SearchResultSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    job = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    faces = ResultFaceSerializer(many=True)


SEARCH_FILTERS = [*LIST_FILTERS, OpenApiParameter("status", str, enum=[s.value for s in SearchJob.Status])]


class CaseSearches(ApiView):
    @extend_schema(
        operation_id="searches_list",
        summary="The searches of a case, newest first",
        parameters=SEARCH_FILTERS,
        responses={200: paginated_schema(SearchSerializer), **problem_responses(400, 401, 403, 404, 429)},
        tags=["searches"],
    )
    def get(self, request, code):
        case = case_selectors.case_get(user=request.user, code=code)
        jobs = filter_listing(
            request, selectors.jobs_for_case(case=case), statuses=[s.value for s in SearchJob.Status]
        ).select_related("offense_category", "probe__case")
        return paginated(self, request, jobs.order_by("-created_at", "-id"), SearchSerializer)

    @extend_schema(
        operation_id="searches_submit",
        summary="Search a probe photo: 202 with the search's URL to poll",
        request={"multipart/form-data": SearchSubmitSerializer},
        responses={202: SearchSerializer, **problem_responses(400, 401, 403, 404, 415, 429)},
        tags=["searches"],
    )
    def post(self, request, code):
        case = case_selectors.case_get(user=request.user, code=code)
        form = SearchSubmitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["photo"]
        try:
            photo_size_check(upload.size)  # before the file is read into memory
            job = probe_submit(
                case=case,
                uploaded_by=request.user,
                data=upload.read(),
                original_name=upload.name or "",
                purpose=form.validated_data["purpose"],
                justification=form.validated_data["justification"],
                sensitive=form.validated_data["sensitive"],
                top_k=form.validated_data["top_k"],
                ip_address=client_address(request),
                face_choice={"mode": "all"},  # every face, as the commands do
            )
        except (PhotoRejected, SearchRefused) as exc:
            raise Refused(str(exc))
        body = SearchSerializer(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class SearchDetail(ApiView):
    @extend_schema(
        operation_id="searches_read",
        summary="A search's status (poll until finished)",
        responses={200: SearchSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["searches"],
    )
    def get(self, request, code):
        return Response(SearchSerializer(selectors.job_get(user=request.user, code=code)).data)


class SearchResults(ApiView):
    @extend_schema(
        operation_id="searches_results",
        summary="A search's results: search_photo --json's faces, with the ids to act on",
        responses={200: SearchResultSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["searches"],
    )
    def get(self, request, code):
        job = selectors.job_get(user=request.user, code=code)
        result = selectors.search_job_result(job=job)
        if job.status == SearchJob.Status.DONE:
            audit_view(request, AuditEntry.Action.RESULTS_VIEWED, case=job.probe.case, target=job, data=_via(request))
            faces = job.probe.faces.order_by("index")
            reviews = dict(LeadReview.objects.filter(candidate__job=job).values_list("candidate_id", "status"))
            ids = {
                (c.probe_face_id, c.rank): c.id
                for c in Candidate.objects.filter(job=job).only("id", "rank", "probe_face")
            }
            for face, entry in zip(faces, result["faces"], strict=True):
                entry["index"] = face.index
                for candidate in entry["candidates"]:
                    candidate["url"] = reverse(
                        "api:candidate-detail", kwargs={"code": job.code, "face": face.index, "rank": candidate["rank"]}
                    )
                    candidate["review"] = reviews.get(ids.get((face.id, candidate["rank"])))
        return Response({"id": job.code, **result})


# --- Candidates and lead decisions ----------------------------------------------------------------------------


class ComparisonSerializer(serializers.Serializer):
    features = serializers.DictField(
        child=serializers.ChoiceField(choices=[v for v, _ in comparison.VALUES]),
        help_text="Every FISWG feature: " + ", ".join(k for k, _ in comparison.FEATURES),
    )
    conclusion = serializers.ChoiceField(choices=[c for c, _ in comparison.CONCLUSIONS])
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    def entry(self) -> comparison.ComparisonEntry:
        try:
            return comparison.ComparisonEntry(
                features=self.validated_data["features"],
                conclusion=self.validated_data["conclusion"],
                notes=self.validated_data["notes"].strip(),
            )
        except comparison.ComparisonInvalid as exc:
            raise exceptions.ValidationError({"features": [str(exc)]})


class MarkSerializer(ComparisonSerializer):
    decision = serializers.ChoiceField(choices=[LeadReview.Status.POSSIBLE_LEAD, LeadReview.Status.EXCLUDED])


class DecideSerializer(serializers.Serializer):
    confirm = serializers.BooleanField()
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RecordSerializer(serializers.Serializer):
    examiner = serializers.CharField(source="examiner.username")
    features = serializers.DictField(child=serializers.CharField())
    conclusion = serializers.CharField()
    notes = serializers.CharField()
    created_at = serializers.DateTimeField()


class CandidateSerializer(serializers.Serializer):
    search = serializers.UUIDField(source="job.code")
    face_index = serializers.IntegerField(source="probe_face.index")
    rank = serializers.IntegerField()
    profile = serializers.CharField(allow_null=True)
    profile_id = serializers.IntegerField(allow_null=True)
    distance = serializers.FloatField()
    match = serializers.BooleanField()
    review = serializers.CharField(allow_null=True)
    first_record = RecordSerializer(allow_null=True, help_text="Hidden (null) while verification is blind")
    second_record = RecordSerializer(allow_null=True)
    my_record = RecordSerializer(allow_null=True)
    hidden = serializers.CharField(help_text="Why the first record is hidden from you (empty: it is not)")
    # The lineup gate (search/lineup.py): never cleared on the face search alone.
    cleared_for_identification = serializers.BooleanField(
        help_text="True only once independent evidence is recorded and a supervisor cleared the lead"
    )
    identification_procedures = serializers.CharField(help_text="In plain words: may a lineup or arrest request follow")
    evidence = EvidenceSerializer(many=True, help_text="Independent evidence recorded for the lead")


def _via(request) -> dict:
    """What an audit entry of a view says of the API call: which token (its public prefix) made it."""
    return {"via": "api", "token": request.auth.prefix}


def _candidate_body(request, candidate: Candidate) -> dict:
    review = LeadReview.objects.filter(candidate=candidate).select_related("proposed_by").first()
    records = {record.role: record for record in candidate.comparison_records.select_related("examiner")}
    shown = comparison.records_shown(user=request.user, review=review, records=records)
    audit_view(
        request,
        AuditEntry.Action.COMPARISON_VIEWED,
        case=candidate.job.probe.case,
        target=candidate,
        data={"profile_id": candidate.profile_id, "first_record_shown": shown.first is not None} | _via(request),
    )
    clearance = lineup.clearance_of(review)
    return CandidateSerializer(
        {
            "job": candidate.job,
            "probe_face": candidate.probe_face,
            "rank": candidate.rank,
            "profile": candidate.profile.display_name if candidate.profile else None,
            "profile_id": candidate.profile_id,
            "distance": round(candidate.distance, 4),
            "match": selectors.candidate_is_match(candidate),
            "review": review.status if review else None,
            "first_record": shown.first,
            "second_record": shown.second,
            "my_record": shown.mine,
            "hidden": shown.hidden,
            "cleared_for_identification": clearance.cleared,
            "identification_procedures": clearance.sentence,
            "evidence": clearance.evidence,
        }
    ).data


def _candidate(request, code, face, rank) -> Candidate:
    if face > 32767 or rank > 32767:  # beyond the columns' range: no such candidate (not a database error)
        raise exceptions.NotFound("No such candidate.")
    candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    if candidate.erased_at:
        raise exceptions.NotFound("This candidate was erased.")
    return candidate


def _reviewed(call):
    try:
        return call()
    except leads.ComparisonErrors as exc:
        raise exceptions.ValidationError({field: [message] for field, message in exc.errors.items()})
    except leads.ReviewRefused as exc:
        raise Refused(str(exc))


CANDIDATE_PROBLEMS = problem_responses(400, 401, 403, 404, 415, 429)


class CandidateDetail(ApiView):
    @extend_schema(
        operation_id="candidates_read",
        summary="A candidate with the comparison records you may see (blind verification applies)",
        responses={200: CandidateSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["candidates"],
    )
    def get(self, request, code, face, rank):
        return Response(_candidate_body(request, _candidate(request, code, face, rank)))


class CandidateMark(ApiView):
    @extend_schema(
        operation_id="candidates_mark",
        summary="Propose a possible lead or exclude, with your comparison record",
        request=MarkSerializer,
        responses={200: CandidateSerializer, **CANDIDATE_PROBLEMS},
        tags=["candidates"],
    )
    def post(self, request, code, face, rank):
        candidate = _candidate(request, code, face, rank)
        form = MarkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _reviewed(
            lambda: leads.candidate_mark(
                user=request.user,
                candidate=candidate,
                decision=form.validated_data["decision"],
                comparison_entry=form.entry(),
                ip_address=client_address(request),
            )
        )
        return Response(_candidate_body(request, _candidate(request, code, face, rank)))


class LeadVerify(ApiView):
    @extend_schema(
        operation_id="leads_verify",
        summary="A supervisor's own blind comparison record of a proposed lead",
        request=ComparisonSerializer,
        responses={200: CandidateSerializer, **CANDIDATE_PROBLEMS},
        tags=["candidates"],
    )
    def post(self, request, code, face, rank):
        candidate = _candidate(request, code, face, rank)
        form = ComparisonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _reviewed(
            lambda: leads.lead_verify(
                user=request.user,
                candidate=candidate,
                comparison_entry=form.entry(),
                ip_address=client_address(request),
            )
        )
        return Response(_candidate_body(request, _candidate(request, code, face, rank)))


class LeadDecide(ApiView):
    @extend_schema(
        operation_id="leads_decide",
        summary="Confirm or reject a proposed lead (a supervisor, not the proposer, after verifying)",
        request=DecideSerializer,
        responses={200: CandidateSerializer, **CANDIDATE_PROBLEMS},
        tags=["candidates"],
    )
    def post(self, request, code, face, rank):
        candidate = _candidate(request, code, face, rank)
        form = DecideSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _reviewed(
            lambda: leads.lead_decide(
                user=request.user,
                candidate=candidate,
                confirm=form.validated_data["confirm"],
                note=form.validated_data["note"],
                ip_address=client_address(request),
            )
        )
        return Response(_candidate_body(request, _candidate(request, code, face, rank)))


class OffenseCategoryList(ApiView):
    @extend_schema(
        operation_id="purposes_list",
        summary="The offense categories a search may state as its purpose",
        responses={200: serializers.ListSerializer(child=serializers.CharField()), **problem_responses(401, 403, 429)},
        tags=["searches"],
    )
    def get(self, request):
        return Response(
            list(OffenseCategory.objects.filter(is_active=True).order_by("name").values_list("name", flat=True))
        )


# --- Galleries (the agency admin's, as on the galleries page) -------------------------------------------------


class AgencyAdminOnly(permissions.BasePermission):
    message = "Only your agency admin manages galleries."

    def has_permission(self, request, view):
        return request.user.role == Role.AGENCY_ADMIN


class GallerySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    faces = serializers.IntegerField(read_only=True, help_text="Faces enrolled")
    profiles = serializers.IntegerField(source="profile_count", read_only=True)

    class Meta:
        model = Gallery
        fields = [
            "id",
            "name",
            "source_type",
            "legal_basis",
            "responsible_person",
            "retention_days",
            "engine",
            "faces",
            "profiles",
            "created_at",
        ]
        read_only_fields = fields


class PhotosEnrolSerializer(serializers.Serializer):
    photos = serializers.ListField(
        child=serializers.FileField(), min_length=1, max_length=MAX_PHOTOS_PER_UPLOAD, help_text="Photos of one person"
    )
    display_name = serializers.CharField(max_length=200)
    date_of_birth = serializers.DateField(required=False, allow_null=True, default=None)
    record_reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class NistImportSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(),
        min_length=1,
        max_length=MAX_PHOTOS_PER_UPLOAD,
        help_text="ANSI/NIST-ITL booking records (.an2, .nist, .eft): each one subject",
    )


class EnrolmentResultSerializer(serializers.Serializer):
    file = serializers.CharField()
    ok = serializers.BooleanField()
    reason = serializers.CharField(required=False)
    code = serializers.CharField(required=False)


class PhotosEnrolledSerializer(serializers.Serializer):
    gallery = serializers.UUIDField()
    enrolled = serializers.IntegerField()
    results = EnrolmentResultSerializer(many=True)


class NistSkippedSerializer(serializers.Serializer):
    file = serializers.CharField()
    reason = serializers.CharField()
    code = serializers.CharField(required=False, allow_null=True)


class NistImportedSerializer(serializers.Serializer):
    gallery = serializers.UUIDField()
    profiles = serializers.IntegerField()
    faces_enrolled = serializers.IntegerField()
    files_skipped = serializers.IntegerField()
    skipped = NistSkippedSerializer(many=True)


def _galleries(user):
    return Gallery.objects.filter(owner_id=user.agency_id).annotate(
        faces=Count("face_images", distinct=True), profile_count=Count("profiles", distinct=True)
    )


def _gallery(request, code) -> Gallery:
    return get_object_or_404(_galleries(request.user), code=code)


GALLERY_PROBLEMS = problem_responses(400, 401, 403, 404, 415, 429)


class GalleryList(ApiView):
    permission_classes = [AgencyTokenUser, AgencyAdminOnly]

    @extend_schema(
        operation_id="galleries_list",
        summary="The agency's galleries (agency admin)",
        responses={200: GallerySerializer(many=True), **problem_responses(401, 403, 429)},
        tags=["galleries"],
    )
    def get(self, request):
        return Response(GallerySerializer(_galleries(request.user).order_by("name"), many=True).data)


class GalleryDetail(ApiView):
    permission_classes = [AgencyTokenUser, AgencyAdminOnly]

    @extend_schema(
        operation_id="galleries_read",
        summary="One gallery with its counts: the state of its enrolment",
        responses={200: GallerySerializer, **problem_responses(401, 403, 404, 429)},
        tags=["galleries"],
    )
    def get(self, request, code):
        return Response(GallerySerializer(_gallery(request, code)).data)


class GalleryPhotos(ApiView):
    permission_classes = [AgencyTokenUser, AgencyAdminOnly]

    @extend_schema(
        operation_id="galleries_enrol_photos",
        summary="Enrol photos of one person (each photo enrolled whole or refused with its reason)",
        request={"multipart/form-data": PhotosEnrolSerializer},
        responses={200: PhotosEnrolledSerializer, **GALLERY_PROBLEMS},
        tags=["galleries"],
    )
    def post(self, request, code):
        gallery = _gallery(request, code)
        form = PhotosEnrolSerializer(data={**request.data.dict(), "photos": request.FILES.getlist("photos")})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            for upload in data["photos"]:
                photo_size_check(upload.size)
            outcome = gallery_photos_enrol(
                enrolled_by=request.user,
                gallery=gallery,
                photos=data["photos"],
                display_name=data["display_name"],
                date_of_birth=data["date_of_birth"],
                record_reference=data["record_reference"],
                ip_address=client_address(request),
            )
        except (PhotoRejected, GalleryRefused) as exc:
            raise Refused(str(exc))
        if not outcome.enrolled:
            reasons = " ".join(f"{r['file']}: {r.get('reason', '')}" for r in outcome.results)
            raise Refused(f"Nothing enrolled. {reasons}")
        return Response({"gallery": gallery.code, "enrolled": outcome.enrolled, "results": outcome.results})


class GalleryNist(ApiView):
    permission_classes = [AgencyTokenUser, AgencyAdminOnly]

    @extend_schema(
        operation_id="galleries_import_nist",
        summary="Import ANSI/NIST-ITL booking records (docs/nist-import.md has the field mapping)",
        request={"multipart/form-data": NistImportSerializer},
        responses={200: NistImportedSerializer, **GALLERY_PROBLEMS},
        tags=["galleries"],
    )
    def post(self, request, code):
        from search.enrolment import gallery_nist_upload

        gallery = _gallery(request, code)
        form = NistImportSerializer(data={"files": request.FILES.getlist("files")})
        form.is_valid(raise_exception=True)
        try:
            summary = gallery_nist_upload(
                enrolled_by=request.user,
                gallery=gallery,
                uploads=form.validated_data["files"],
                ip_address=client_address(request),
            )
        except GalleryRefused as exc:
            raise Refused(str(exc))
        result = summary.as_dict()
        if not summary.faces_enrolled:
            reasons = " ".join(f"{s['file']}: {s['reason']}" for s in result["skipped"])
            raise Refused(f"Nothing enrolled. {reasons}")
        return Response(
            {
                "gallery": gallery.code,
                "profiles": result["profiles"],
                "faces_enrolled": result["faces_enrolled"],
                "files_skipped": result["files_skipped"],
                "skipped": [
                    {"file": s["file"], "reason": s["reason"], "code": s.get("code")} for s in result["skipped"]
                ],
            }
        )
