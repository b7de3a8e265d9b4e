import csv
import json
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from accounts.models import Agency, Role, User
from accounts.services import agency_create, user_create_with_second_factor
from search.services import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create

DEMO_AGENCY = "demo"
DEMO_USERS = [("demo-admin", Role.AGENCY_ADMIN), ("demo-supervisor", Role.SUPERVISOR), ("demo-officer", Role.OFFICER)]
DEMO_GALLERY = "Demo booking photos"


class Command(BaseCommand):
    help = "Create the demo agency, its users and (when the shared photos exist) a demo gallery. Idempotent."

    def handle(self, *args, **options):
        logins_file = settings.DEMO_LOGINS_FILE
        logins = json.loads(logins_file.read_text()) if logins_file.exists() else {}
        agency = Agency.objects.filter(slug=DEMO_AGENCY).first() or agency_create(
            slug=DEMO_AGENCY, name="Demo Police Department", seats=10)
        for username, role in DEMO_USERS:
            if not User.objects.filter(username=username).exists():
                password = secrets.token_urlsafe(12)
                created = user_create_with_second_factor(username=username, password=password, role=role,
                                                         agency=agency)
                logins[username] = {"password": password, "totp_secret": created.totp_secret,
                                    "backup_codes": created.backup_codes}
        logins_file.write_text(json.dumps(logins, indent=2))
        logins_file.chmod(0o600)
        self._seed_gallery(agency)
        self.stdout.write(f"\nDemo logins (passwords, authenticator keys and backup codes in {logins_file}):")
        for username, role in DEMO_USERS:
            login = logins.get(username) or {}
            codes = login.get("backup_codes") or []
            self.stdout.write(f"  {role.label:<14} {username:<16} password {login.get('password', '(see the file)')}"
                              f"   backup code {codes[0] if codes else '(enrol at first sign-in)'}")
        self.stdout.write("Second factor: add the authenticator key to an app, or use a backup code (each works once).")

    def _seed_gallery(self, agency: Agency) -> None:
        pairs = settings.FACES_DIR / "pairs"
        identities = pairs / "identities.csv"
        if not identities.exists():
            self.stdout.write(f"No demo photos at {pairs} (FACES_DIR): the demo gallery stays empty. "
                              "Enrol a folder of your own with `python manage.py enroll_gallery`.")
            return
        gallery, created = gallery_get_or_create(
            owner=agency, name=DEMO_GALLERY,
            legal_basis="Demonstration data: public photos from an open-source test set (MIT licence)",
            source_description="Photos of public figures from an open-source face-recognition test set")
        if not created and gallery.face_images.exists():
            self.stdout.write(f"Demo gallery already enrolled ({gallery.face_images.count()} faces).")
            return
        with identities.open() as rows:
            items = [EnrolmentItem(path=str(pairs / row["file"]), display_name=f"Person {row['identity']}",
                                   profile_fields={"record_reference": f"DEMO-{row['identity']}"})
                     for row in csv.DictReader(rows)]
        with tqdm(total=len(items), unit="photo", desc="Enrolling the demo gallery") as bar:
            summary = gallery_enrol_batch(gallery=gallery, gallery_created=created, items=items,
                                          progress=lambda item: bar.update(1))
        result = summary.as_dict()
        self.stdout.write(f"Demo gallery: {result['profiles']} profiles, {result['faces_enrolled']} faces.")
