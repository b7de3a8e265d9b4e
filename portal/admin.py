from django.contrib import admin

from portal.models import Case


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("number", "title", "agency", "status", "created_by", "created_at")
    list_filter = ("agency", "status")
    search_fields = ("number", "title")
    readonly_fields = ("agency", "created_by", "created_at", "closed_at")
