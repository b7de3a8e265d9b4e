import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import AGENCY_ROLES, PLATFORM_ROLES
from accounts.selectors import agency_get_by_slug
from accounts.services import AccountError, user_create_with_second_factor


class Command(BaseCommand):
    help = "Create a user of an agency (--agency SLUG --role ROLE) or of the platform (--platform-role ROLE)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--agency", help="Slug of the user's agency")
        parser.add_argument("--role", choices=[r.value for r in AGENCY_ROLES])
        parser.add_argument("--platform-role", choices=[r.value for r in PLATFORM_ROLES])
        parser.add_argument("--password", required=True, help="At least 12 characters")
        parser.add_argument("--email", default="")
        parser.add_argument("--json", action="store_true", help='Print {"username": ..., "id": ...}')

    def handle(self, *args, username, agency, role, platform_role, password, email, **options):
        if platform_role and (agency or role):
            raise CommandError("Give either --agency with --role, or --platform-role, not both.")
        if not platform_role and not (agency and role):
            raise CommandError(
                "Give --agency SLUG with --role officer|supervisor|agency_admin,"
                " or --platform-role platform_staff|privacy_officer."
            )
        agency_obj = None
        if agency:
            agency_obj = agency_get_by_slug(agency)
            if agency_obj is None:
                raise CommandError(f"No agency with the slug {agency!r}.")
        try:
            created = user_create_with_second_factor(
                username=username, password=password, role=platform_role or role, agency=agency_obj, email=email
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        user = created.user
        if options["json"]:
            # The second factor is printed only where pre-enrolment is on (never in production, where the
            # user enrols their own device at first sign-in): then totp_secret is null.
            self.stdout.write(
                json.dumps(
                    {
                        "username": user.username,
                        "id": user.id,
                        "totp_secret": created.totp_secret,
                        "backup_codes": created.backup_codes,
                    }
                )
            )
            return
        where = f"of {agency_obj.name}" if agency_obj else "of the platform"
        self.stdout.write(f"Created {user.get_role_display().lower()} {user.username} {where}.")
        if created.totp_secret:
            self.stdout.write(f"TOTP secret (add it to an authenticator app): {created.totp_secret}")
            self.stdout.write(f"Backup codes: {' '.join(created.backup_codes)}")
        else:
            self.stdout.write("The user sets up their second factor at first sign-in.")
