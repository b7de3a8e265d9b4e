from django.contrib import admin

from portal.models import AuditEntry, Case


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("number", "title", "agency", "status", "created_by", "created_at")
    list_filter = ("agency", "status")
    search_fields = ("number", "title")
    readonly_fields = ("agency", "created_by", "created_at", "closed_at")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("id", "at", "action", "username", "agency", "ip_address", "case", "detail")
    list_filter = ("action", "agency")
    search_fields = ("username", "detail", "ip_address")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
