from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Agency, User


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "seats", "created_at")
    search_fields = ("name", "slug")


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    list_display = ("username", "agency", "role", "is_active", "last_login")
    list_filter = ("agency", "role", "is_active")
    fieldsets = UserAdmin.fieldsets + (("Agency and role", {"fields": ("agency", "role")}),)
    add_fieldsets = UserAdmin.add_fieldsets + (("Agency and role", {"fields": ("agency", "role")}),)
