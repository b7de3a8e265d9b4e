from django.contrib import admin

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
    exclude = ("embedding",)


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
    list_display = ("code", "agency", "status", "stage", "attempts", "started_by", "created_at", "finished_at")
    list_filter = ("agency", "status")


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
