import csv
import json
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from accounts.models import Agency, Role, User
from accounts.services import agency_create, user_create_with_second_factor
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create

DEMO_AGENCY = "demo"
DEMO_USERS = [("demo-admin", Role.AGENCY_ADMIN), ("demo-supervisor", Role.SUPERVISOR), ("demo-officer", Role.OFFICER)]
# A second agency on the same deployment: its users see nothing of the first agency's data.
OTHER_AGENCY = "demo-south"
OTHER_USERS = [("south-admin", Role.AGENCY_ADMIN), ("south-officer", Role.OFFICER)]
DEMO_GALLERY = "Demo booking photos"


class Command(BaseCommand):
    help = "Create the demo agency, its users and (when the shared photos exist) a demo gallery. Idempotent."

    def handle(self, *args, **options):
        logins_file = settings.DEMO_LOGINS_FILE
        logins = json.loads(logins_file.read_text()) if logins_file.exists() else {}
        agency = self._agency_with_users(DEMO_AGENCY, "Demo Police Department", DEMO_USERS, logins)
        self._agency_with_users(OTHER_AGENCY, "Southern Demo Constabulary", OTHER_USERS, logins)
        logins_file.write_text(json.dumps(logins, indent=2))
        logins_file.chmod(0o600)
        self._seed_gallery(agency)
        self.stdout.write(f"\nDemo logins (passwords, authenticator keys and backup codes in {logins_file}):")
        for username, role in DEMO_USERS + OTHER_USERS:
            login = logins.get(username) or {}
            if isinstance(login, str):  # the file of an earlier version held the password alone
                login = {"password": login}
            codes = login.get("backup_codes") or []
            self.stdout.write(
                f"  {role.label:<14} {username:<16} password {login.get('password', '(see the file)')}"
                f"   backup code {codes[0] if codes else '(enrol at first sign-in)'}"
            )
        self.stdout.write("Second factor: add the authenticator key to an app, or use a backup code (each works once).")

    def _agency_with_users(self, slug: str, name: str, users: list, logins: dict) -> Agency:
        agency = Agency.objects.filter(slug=slug).first() or agency_create(slug=slug, name=name, seats=10)
        for username, role in users:
            if not User.objects.filter(username=username).exists():
                password = secrets.token_urlsafe(12)
                created = user_create_with_second_factor(username=username, password=password, role=role, agency=agency)
                logins[username] = {
                    "password": password,
                    "totp_secret": created.totp_secret,
                    "backup_codes": created.backup_codes,
                }
        return agency

    def _seed_gallery(self, agency: Agency) -> None:
        pairs = settings.FACES_DIR / "pairs"
        identities = pairs / "identities.csv"
        if not identities.exists():
            self.stdout.write(
                f"No demo photos at {pairs} (FACES_DIR): the demo gallery stays empty. "
                "Enrol a folder of your own with `python manage.py enroll_gallery`."
            )
            return
        gallery, created = gallery_get_or_create(
            owner=agency,
            name=DEMO_GALLERY,
            legal_basis="Demonstration data: public photos from an open-source test set (MIT licence)",
            legal_basis_reference="deepface test data, MIT licence",
            source_type="other",
            responsible_person="Demo administrator",
            retention_days=365,
            source_description="Photos of public figures from an open-source face-recognition test set",
        )
        if not created and gallery.face_images.exists():
            self.stdout.write(f"Demo gallery already enrolled ({gallery.face_images.count()} faces).")
            return
        with identities.open() as rows:
            items = [
                EnrolmentItem(
                    path=str(pairs / row["file"]),
                    display_name=f"Person {row['identity']}",
                    profile_fields={"record_reference": f"DEMO-{row['identity']}"},
                )
                for row in csv.DictReader(rows)
            ]
        with tqdm(total=len(items), unit="photo", desc="Enrolling the demo gallery") as bar:
            summary = gallery_enrol_batch(
                gallery=gallery, gallery_created=created, items=items, progress=lambda item: bar.update(1)
            )
        result = summary.as_dict()
        self.stdout.write(f"Demo gallery: {result['profiles']} profiles, {result['faces_enrolled']} faces.")
