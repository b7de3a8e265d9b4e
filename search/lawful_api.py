"""The API of lawful use: the agency's policy and the user's certification, and a case's authorisations (the same
rules as the pages: search/lawful_use.py)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from accounts.selectors import agency_policy, certification_current
from portal import selectors as case_selectors
from portal.api import ApiView, Refused, problem_responses
from portal.client_address import client_address
from search import lawful_use
from search.gallery_scope import galleries_searchable_by
from search.models import CaseAuthorisation, OffenseCategory


class PolicySerializer(serializers.Serializer):
    agency = serializers.CharField(source="agency.slug")
    authorisation_required = serializers.BooleanField()
    urgent_window_hours = serializers.IntegerField()
    certification_required = serializers.BooleanField()
    watchlist_max_entries = serializers.IntegerField()
    watchlist_max_days = serializers.IntegerField()


class PolicyBodySerializer(serializers.Serializer):
    policy = PolicySerializer()
    certified_until = serializers.DateField(allow_null=True)
    certification_current = serializers.BooleanField()
    may_search = serializers.BooleanField(help_text="Whether your certification allows you to search today")
    reason = serializers.CharField(allow_blank=True, help_text="Why not, when you may not")


class PolicyDetail(ApiView):
    @extend_schema(
        operation_id="policy_read",
        summary="Your agency's policy on searches, and your face-search certification",
        responses={200: PolicyBodySerializer, **problem_responses(401, 403, 429)},
        tags=["lawful use"],
    )
    def get(self, request):
        user = request.user
        try:
            lawful_use.searcher_check(user)
            reason = ""
        except lawful_use.UseRefused as exc:
            reason = str(exc)
        policy = agency_policy(agency_id=user.agency_id)
        return Response(
            {
                "policy": PolicySerializer(policy).data,
                "certified_until": user.search_certified_until,
                "certification_current": certification_current(user),
                "may_search": not reason,
                "reason": reason,
            }
        )


class AuthorisationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    galleries = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    offense_categories = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    requested_by = serializers.CharField(source="requested_by.username", default=None, read_only=True)
    recorded_by = serializers.CharField(source="recorded_by.username", default=None, read_only=True)
    words = serializers.SerializerMethodField()

    class Meta:
        model = CaseAuthorisation
        fields = [
            "id",
            "status",
            "words",
            "requested_at",
            "requested_by",
            "window_ends_at",
            "authority",
            "reference",
            "decided_on",
            "expires_at",
            "galleries",
            "offense_categories",
            "refusal_reason",
            "recorded_by",
            "recorded_at",
        ]
        read_only_fields = fields

    def get_words(self, authorisation) -> str:
        return lawful_use.authorisation_words(authorisation)


class CaseAuthorisationsSerializer(serializers.Serializer):
    required = serializers.BooleanField(help_text="Whether the agency's policy asks for an authorisation")
    may_search = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True, help_text="Why the case may not search now")
    authorisations = AuthorisationSerializer(many=True, help_text="Newest first; the first is the current one")


def _case_authorisations(case) -> dict:
    try:
        lawful_use.case_search_check(case=case, category=None)
        reason = ""
    except lawful_use.UseRefused as exc:
        reason = str(exc)
    rows = case.authorisations.prefetch_related("galleries", "offense_categories").select_related(
        "requested_by", "recorded_by"
    )
    return {
        "required": agency_policy(agency_id=case.agency_id).authorisation_required,
        "may_search": not reason,
        "reason": reason,
        "authorisations": AuthorisationSerializer(rows, many=True).data,
    }


class CaseAuthorisations(ApiView):
    @extend_schema(
        operation_id="case_authorisations_list",
        summary="The case's authorisations, and whether it may search now",
        responses={200: CaseAuthorisationsSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["lawful use"],
    )
    def get(self, request, code):
        return Response(_case_authorisations(case_selectors.case_get(user=request.user, code=code)))


class _AnswerSerializer(serializers.Serializer):
    authority = serializers.CharField(max_length=200)
    reference = serializers.CharField(max_length=200)
    decided_on = serializers.DateField()


class GrantSerializer(_AnswerSerializer):
    valid_until = serializers.DateField(required=False, allow_null=True, help_text="Last day covered; empty: no end")
    galleries = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="Gallery ids covered; empty: every one"
    )
    offense_categories = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="Category names; empty: every one"
    )


class RefuseSerializer(_AnswerSerializer):
    refusal_reason = serializers.CharField(min_length=10)


def _answered(call):
    try:
        return call()
    except lawful_use.AuthorisationError as exc:
        raise exceptions.ValidationError({field: [message] for field, message in exc.errors.items()})
    except lawful_use.UseRefused as exc:
        raise Refused(str(exc))


ANSWER_PROBLEMS = problem_responses(400, 401, 403, 404, 415, 429)


class AuthorisationGrant(ApiView):
    @extend_schema(
        operation_id="case_authorisations_grant",
        summary="Record the authority's grant for the case (a supervisor)",
        request=GrantSerializer,
        responses={200: CaseAuthorisationsSerializer, **ANSWER_PROBLEMS},
        tags=["lawful use"],
    )
    def post(self, request, code):
        case = case_selectors.case_get(user=request.user, code=code)
        form = GrantSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        gallery_codes = set(data.get("galleries") or [])
        galleries = list(galleries_searchable_by(agency_id=case.agency_id).filter(code__in=gallery_codes))
        if len(galleries) != len(gallery_codes):
            raise exceptions.ValidationError({"galleries": ["Choose among the galleries your agency may search."]})
        names = set(data.get("offense_categories") or [])
        categories = list(OffenseCategory.objects.filter(name__in=names))
        if len(categories) != len(names):
            raise exceptions.ValidationError({"offense_categories": ["Unknown offense category."]})
        valid_until = data.get("valid_until")
        _answered(
            lambda: lawful_use.authorisation_grant(
                case=case,
                user=request.user,
                authority=data["authority"],
                reference=data["reference"],
                decided_on=data["decided_on"],
                expires_at=(
                    timezone.make_aware(datetime.combine(valid_until + timedelta(days=1), time.min))
                    if valid_until
                    else None
                ),
                gallery_ids=[g.id for g in galleries],
                category_ids=[c.id for c in categories],
                ip_address=client_address(request),
            )
        )
        return Response(_case_authorisations(case))


class AuthorisationRefuse(ApiView):
    @extend_schema(
        operation_id="case_authorisations_refuse",
        summary="Record the authority's refusal: the case's searches stop and their data is erased (a supervisor)",
        request=RefuseSerializer,
        responses={200: CaseAuthorisationsSerializer, **ANSWER_PROBLEMS},
        tags=["lawful use"],
    )
    def post(self, request, code):
        case = case_selectors.case_get(user=request.user, code=code)
        form = RefuseSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        _answered(
            lambda: lawful_use.authorisation_refuse(
                case=case,
                user=request.user,
                authority=data["authority"],
                reference=data["reference"],
                decided_on=data["decided_on"],
                reason=data["refusal_reason"],
                ip_address=client_address(request),
            )
        )
        return Response(_case_authorisations(case))
