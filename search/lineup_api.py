"""The lineup gate in the REST API: record independent evidence for a confirmed lead, and a supervisor's
clearance; the same rules as the pages (search/lineup.py). The candidate's own representation
(search/api.py) carries the gate's state through `clearance_body`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from portal.api import ApiView, Refused, problem_responses
from portal.client_address import client_address
from search import lineup, selectors
from search.models import Candidate, IndependentEvidence, LeadReview


class EvidenceSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="code")
    kind = serializers.CharField()
    kind_label = serializers.CharField()
    description = serializers.CharField()
    obtained_by = serializers.CharField()
    obtained_on = serializers.DateField()
    recorded_by = serializers.CharField()
    recorded_at = serializers.DateTimeField()


class ClearanceSerializer(serializers.Serializer):
    cleared_for_identification = serializers.BooleanField(
        help_text="True only once independent evidence is recorded and a supervisor cleared the lead"
    )
    identification_procedures = serializers.CharField(help_text="The plain sentence the pages and the report show")
    evidence = EvidenceSerializer(many=True)
    cleared_by = serializers.CharField(allow_null=True)
    cleared_at = serializers.DateTimeField(allow_null=True)


class EvidenceRecordSerializer(serializers.Serializer):
    kind = serializers.CharField(
        max_length=40, help_text="One of: " + ", ".join(IndependentEvidence.Kind.values) + " (never the face search)"
    )
    description = serializers.CharField(max_length=5000, help_text="What it is and shows (≥ 20 characters)")
    obtained_by = serializers.CharField(max_length=200)
    obtained_on = serializers.DateField(help_text="Not in the future")
    obtained_independently = serializers.BooleanField(help_text=f"Must be true: “{lineup.INDEPENDENCE_STATEMENT}”")

    def validate_obtained_independently(self, value):
        if value is not True:
            raise serializers.ValidationError(f"State “{lineup.INDEPENDENCE_STATEMENT}” (true).")
        return value


class ClearRequestSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def clearance_body(review: LeadReview | None) -> dict:
    """The lineup gate's fields of a candidate or lead (also in search/api.py's candidate)."""
    clearance = lineup.clearance_of(review)
    return ClearanceSerializer(
        {
            "cleared_for_identification": clearance.cleared,
            "identification_procedures": clearance.sentence,
            "evidence": clearance.evidence,
            "cleared_by": clearance.cleared_by or None,
            "cleared_at": clearance.cleared_at,
        }
    ).data


def _review(request, code, face, rank) -> LeadReview:
    if face > 32767 or rank > 32767:  # beyond the columns' range: no such candidate (not a database error)
        raise exceptions.NotFound("No such candidate.")
    candidate: Candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    review = LeadReview.objects.filter(candidate=candidate).select_related("candidate__job__probe__case").first()
    if review is None:
        raise Refused("This candidate is not a confirmed lead: nothing was recorded.")
    return review


GATE_PROBLEMS = problem_responses(400, 401, 403, 404, 415, 429)


class LeadEvidence(ApiView):
    @extend_schema(
        operation_id="leads_evidence_record",
        summary="Record independent evidence (not the face search) for a confirmed lead",
        request=EvidenceRecordSerializer,
        responses={201: ClearanceSerializer, **GATE_PROBLEMS},
        tags=["candidates"],
    )
    def post(self, request, code, face, rank):
        review = _review(request, code, face, rank)
        form = EvidenceRecordSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            lineup.evidence_record(
                review=review,
                user=request.user,
                kind=data["kind"],
                description=data["description"],
                obtained_by=data["obtained_by"],
                obtained_on=data["obtained_on"],
                ip_address=client_address(request),
            )
        except lineup.EvidenceErrors as exc:
            raise exceptions.ValidationError({name: [message] for name, message in exc.errors.items()})
        except lineup.ClearanceRefused as exc:
            raise Refused(str(exc))
        review.refresh_from_db()
        return Response(clearance_body(review), status=status.HTTP_201_CREATED)


class LeadClear(ApiView):
    @extend_schema(
        operation_id="leads_clear",
        summary="Clear a confirmed lead with independent evidence for identification procedures (a supervisor)",
        request=ClearRequestSerializer,
        responses={200: ClearanceSerializer, **GATE_PROBLEMS},
        tags=["candidates"],
    )
    def post(self, request, code, face, rank):
        review = _review(request, code, face, rank)
        form = ClearRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            review = lineup.lead_clear(
                review=review, user=request.user, note=form.validated_data["note"], ip_address=client_address(request)
            )
        except lineup.ClearanceRefused as exc:
            raise Refused(str(exc))
        return Response(clearance_body(review))
