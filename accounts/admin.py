from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from django import forms

from accounts.models import Agency, Invitation, User
from accounts.services import agency_set_seats, seats_used


class AgencyForm(forms.ModelForm):
    class Meta:
        model = Agency
        fields = ["name", "slug", "seats", "licence_until"]

    def clean_seats(self):
        seats = self.cleaned_data["seats"]
        if self.instance.pk and seats < seats_used(self.instance):
            raise forms.ValidationError(f"{seats_used(self.instance)} seats are in use; deactivate users first.")
        return seats


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    """Platform staff set seat quotas and licence dates here (or with `manage.py set_seats`)."""

    form = AgencyForm
    list_display = ("name", "slug", "seats", "seats_in_use", "licence_until", "created_at")
    search_fields = ("name", "slug")

    @admin.display(description="Seats in use")
    def seats_in_use(self, agency):
        return seats_used(agency)

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # Through the service, so the change is recorded with who made it.
        agency_set_seats(agency=obj, seats=obj.seats, licence_until=obj.licence_until,
                         clear_licence=obj.licence_until is None, actor=request.user)
        Agency.objects.filter(pk=obj.pk).update(name=obj.name, slug=obj.slug)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "agency", "role", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at")
    list_filter = ("agency",)
    exclude = ("token_hash",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    list_display = ("username", "agency", "role", "is_active", "last_login")
    list_filter = ("agency", "role", "is_active")
    fieldsets = UserAdmin.fieldsets + (("Agency and role", {"fields": ("agency", "role")}),)
    add_fieldsets = UserAdmin.add_fieldsets + (("Agency and role", {"fields": ("agency", "role")}),)
