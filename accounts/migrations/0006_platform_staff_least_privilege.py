"""Platform staff no longer add users in the admin (users come from create_user or an invitation, which
count seats), and nobody but a superuser made by createsuperuser keeps is_superuser or direct permissions
beyond the platform staff list."""

from django.db import migrations

STAFF_PERMISSIONS = [
    "add_agency",
    "change_agency",
    "view_agency",
    "change_user",
    "view_user",
    "view_gallery",
    "change_gallery",
    "add_offensecategory",
    "change_offensecategory",
    "view_offensecategory",
    "view_searchjob",
]


def forwards(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    Permission = apps.get_model("auth", "Permission")
    allowed = list(
        Permission.objects.filter(content_type__app_label__in=["accounts", "search"], codename__in=STAFF_PERMISSIONS)
    )
    for user in User.objects.filter(role__in=["platform_staff", "privacy_officer"], is_superuser=False):
        user.groups.clear()
        user.user_permissions.set(allowed if user.role == "platform_staff" else [])
    for user in User.objects.filter(role__in=["officer", "supervisor", "agency_admin"]):
        user.groups.clear()
        user.user_permissions.clear()
    User.objects.filter(role__in=["officer", "supervisor", "agency_admin"]).update(is_staff=False, is_superuser=False)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_delete_securityevent"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
