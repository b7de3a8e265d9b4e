"""The admin of platform staff: agencies, seats and licences, invitations and users (read-mostly).

Least privilege: nobody sets is_superuser, is_staff, groups or permissions here (a superuser is made
only by `createsuperuser`), the admin has no password page (everyone changes their own password on the
portal's page, with both factors), and no page shows an authenticator key or a backup code.
"""

from django import forms
from django.contrib import admin
from django.contrib.auth.models import Group
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Agency, AgencyPolicy, Invitation, User
from accounts.services import POLICY_FIELDS, agency_policy_set, agency_set_seats, seats_used


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
        agency_set_seats(
            agency=obj,
            seats=obj.seats,
            licence_until=obj.licence_until,
            clear_licence=obj.licence_until is None,
            actor=request.user,
        )
        Agency.objects.filter(pk=obj.pk).update(name=obj.name, slug=obj.slug)


class AgencyPolicyForm(forms.ModelForm):
    class Meta:
        model = AgencyPolicy
        fields = ["agency", *POLICY_FIELDS]

    def clean_urgent_window_hours(self):
        hours = self.cleaned_data["urgent_window_hours"]
        if not 1 <= hours <= 720:
            raise forms.ValidationError("The urgent-use window must be between 1 hour and 30 days (720 hours).")
        return hours

    def clean_watchlist_max_days(self):
        days = self.cleaned_data["watchlist_max_days"]
        if not 1 <= days <= 365:
            raise forms.ValidationError("A watch-list entry lives at most a year: give 1 to 365 days.")
        return days


@admin.register(AgencyPolicy)
class AgencyPolicyAdmin(admin.ModelAdmin):
    """Platform staff set each agency's policy on searches here (or with `manage.py set_policy`); the agency's
    users see it on their Lawful use page. An agency without a row asks for none of it."""

    form = AgencyPolicyForm
    list_display = ("agency", *POLICY_FIELDS, "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "agency") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Through the service, so that the change is audited with who made it and what it was.
        policy = agency_policy_set(
            agency=obj.agency, actor=request.user, **{name: form.cleaned_data[name] for name in POLICY_FIELDS}
        )
        obj.pk = policy.pk
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False  # set the settings back instead: the change is then audited


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
class PortalUserAdmin(admin.ModelAdmin):
    """Users are created by `create_user` or an agency admin's invitation (both count seats); roles and
    deactivation belong to the agency admin's Seats page. Here: who they are, and their contact details."""

    list_display = ("username", "agency", "role", "is_active", "last_login")
    list_filter = ("agency", "role", "is_active")
    search_fields = ("username", "email", "first_name", "last_name")
    fields = (
        "username",
        "first_name",
        "last_name",
        "email",
        "agency",
        "role",
        "is_active",
        "last_login",
        "date_joined",
    )
    readonly_fields = ("username", "agency", "role", "is_active", "last_login", "date_joined")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a user's history stays; deactivate on the Seats page


class SecondFactorDeviceAdmin(admin.ModelAdmin):
    """Which second factors a user has, never their secret: a superuser may delete a lost device (the user
    then enrols a new one at their next sign-in); nobody reads or sets a key or a code here."""

    list_display = ("user", "name", "confirmed")
    list_filter = ("confirmed",)
    search_fields = ("user__username",)
    fields = ("user", "name", "confirmed")
    readonly_fields = ("user", "name", "confirmed")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


# django-otp's own admins show (and let one set) the TOTP key and the backup codes; Django's group admin
# would hand out permissions. Replaced, and removed.
for model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, SecondFactorDeviceAdmin)
if admin.site.is_registered(Group):
    admin.site.unregister(Group)
