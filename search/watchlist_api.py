"""The API of the watch-list: the agency's entries, with their alerts (the same rules and reads as the pages:
search/watchlist.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from portal.api import ApiView, paginated, paginated_schema, problem_responses
from search import watchlist


class WatchlistAlertSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    engine = serializers.CharField()
    distance = serializers.FloatField()
    threshold = serializers.FloatField()
    face_image = serializers.UUIDField(source="face_image.code", default=None)
    rank = serializers.IntegerField(source="candidate.rank", help_text="The candidate's rank for the probe face")
    seen = serializers.SerializerMethodField()

    def get_seen(self, alert) -> bool:
        return alert.seen_at is not None


class WatchlistEntrySerializer(serializers.Serializer):
    id = serializers.UUIDField(source="code")
    case = serializers.CharField(source="case.number")
    search = serializers.UUIDField(source="job.code")
    probe_face = serializers.IntegerField(source="probe_face.index")
    status = serializers.CharField()
    days = serializers.IntegerField()
    proposed_by = serializers.CharField(source="proposed_by.username")
    proposed_at = serializers.DateTimeField()
    decided_by = serializers.CharField(source="decided_by.username", default=None)
    decided_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField()
    thresholds = serializers.SerializerMethodField()
    alerts = WatchlistAlertSerializer(many=True, source="alerts.all")

    def get_thresholds(self, entry) -> dict[str, float]:
        return {d.engine: d.threshold for d in entry.descriptors.all()}


class WatchlistList(ApiView):
    @extend_schema(
        operation_id="watchlist_list",
        summary="Your agency's watch-list entries, newest first, with their alerts",
        responses={200: paginated_schema(WatchlistEntrySerializer), **problem_responses(401, 403, 429)},
        tags=["watch-list"],
    )
    def get(self, request):
        entries = watchlist.watchlist_entries_of(user=request.user).prefetch_related(
            "alerts", "alerts__candidate", "alerts__face_image"
        )
        return paginated(self, request, entries, WatchlistEntrySerializer)
