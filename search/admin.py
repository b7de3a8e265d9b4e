from django.contrib import admin
from django.db.models import Count

from search.models import Candidate, FaceImage, Gallery, OffenseCategory, Probe, ProbeFace, Profile, SearchJob


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the pipeline or by enrolment: evidence, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Gallery)
class GalleryAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "engine", "created_at")
    list_filter = ("owner", "engine")
    filter_horizontal = ("shared_with",)
    readonly_fields = ("engine",)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("display_name", "gallery", "record_reference", "created_at")
    list_filter = ("gallery",)
    search_fields = ("display_name", "record_reference")


@admin.register(FaceImage)
class FaceImageAdmin(ReadOnlyAdmin):
    list_display = ("code", "profile", "gallery", "engine", "source_name", "created_at")
    list_filter = ("gallery", "engine")


@admin.register(Probe)
class ProbeAdmin(ReadOnlyAdmin):
    list_display = ("code", "case", "agency", "uploaded_by", "original_name", "created_at")
    list_filter = ("agency",)


@admin.register(ProbeFace)
class ProbeFaceAdmin(ReadOnlyAdmin):
    list_display = ("probe", "index", "engine")
    exclude = ("embedding",)


@admin.register(SearchJob)
class SearchJobAdmin(ReadOnlyAdmin):
    """Searches as metadata for the people who run the deployment: agency, times, state, counts. Never the
    justification, the photo, the officer's case or the candidates."""

    list_display = ("code", "agency", "status", "stage", "attempts", "faces", "candidates", "created_at", "finished_at")
    list_filter = ("agency", "status")
    fields = (
        "code",
        "agency",
        "status",
        "stage",
        "engine",
        "attempts",
        "faces",
        "candidates",
        "stage_ms",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("agency")
            .annotate(
                face_count=Count("probe__faces", distinct=True), candidate_count=Count("candidates", distinct=True)
            )
        )

    @admin.display(description="Faces")
    def faces(self, job):
        return job.face_count

    @admin.display(description="Candidates")
    def candidates(self, job):
        return job.candidate_count


@admin.register(Candidate)
class CandidateAdmin(ReadOnlyAdmin):
    list_display = ("job", "probe_face", "rank", "profile", "distance")


@admin.register(OffenseCategory)
class OffenseCategoryAdmin(admin.ModelAdmin):
    """Platform staff maintain the list; a category in use is retired (inactive), not deleted."""

    list_display = ("name", "is_active", "is_missing_person")
    list_filter = ("is_active",)

    def has_delete_permission(self, request, obj=None):
        return False
