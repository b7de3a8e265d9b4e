"""The create_agency and create_user command-line contracts."""

import io
import json

from django.core.management import CommandError, call_command
from django.test import TestCase

from accounts.models import Agency, Role, User

PASSWORD = "a-long-test-password-1"


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class CreateAgencyTests(TestCase):
    def test_it_creates_an_agency(self):
        run("create_agency", "north", "--name", "North Police", "--seats", "3")
        agency = Agency.objects.get(slug="north")
        self.assertEqual((agency.name, agency.seats), ("North Police", 3))

    def test_it_refuses_a_second_agency_with_the_same_slug(self):
        run("create_agency", "north", "--name", "North Police", "--seats", "3")
        with self.assertRaisesMessage(CommandError, "already exists"):
            run("create_agency", "north", "--name", "Other", "--seats", "1")
        self.assertEqual(Agency.objects.count(), 1)


class CreateUserTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        run("create_agency", "north", "--name", "North Police", "--seats", "2")

    def test_it_prints_the_new_user_as_json(self):
        result = json.loads(
            run("create_user", "alice", "--agency", "north", "--role", "officer", "--password", PASSWORD, "--json")
        )
        user = User.objects.get(username="alice")
        self.assertEqual((result["username"], result["id"]), ("alice", user.id))
        # Pre-enrolment is on outside production: a script can sign in with the printed second factor.
        from django_otp.plugins.otp_totp.models import TOTPDevice

        device = TOTPDevice.objects.get(user=user, confirmed=True)
        import base64

        self.assertEqual(base64.b32decode(result["totp_secret"]), device.bin_key)
        self.assertEqual(len(result["backup_codes"]), 10)
        self.assertEqual((user.role, user.agency.slug), (Role.OFFICER, "north"))
        self.assertTrue(user.check_password(PASSWORD))

    def test_it_creates_a_platform_user_without_an_agency(self):
        run("create_user", "priya", "--platform-role", "privacy_officer", "--password", PASSWORD)
        user = User.objects.get(username="priya")
        self.assertIsNone(user.agency)
        self.assertEqual(user.role, Role.PRIVACY_OFFICER)

    def test_it_refuses_a_password_under_twelve_characters(self):
        with self.assertRaisesMessage(CommandError, "at least 12 characters"):
            run("create_user", "alice", "--agency", "north", "--role", "officer", "--password", "Sh0rt-pass")
        self.assertFalse(User.objects.filter(username="alice").exists())

    def test_it_refuses_an_unknown_agency_and_a_mixed_role(self):
        with self.assertRaisesMessage(CommandError, "No agency with the slug 'nowhere'"):
            run("create_user", "alice", "--agency", "nowhere", "--role", "officer", "--password", PASSWORD)
        with self.assertRaisesMessage(CommandError, "not both"):
            run(
                "create_user", "alice", "--agency", "north", "--platform-role", "platform_staff", "--password", PASSWORD
            )
        self.assertEqual(User.objects.count(), 0)

    def test_it_refuses_a_user_beyond_the_seats_bought(self):
        run("create_user", "alice", "--agency", "north", "--role", "officer", "--password", PASSWORD)
        run("create_user", "bob", "--agency", "north", "--role", "supervisor", "--password", PASSWORD)
        with self.assertRaisesMessage(CommandError, "no free seat (2 of 2 in use)"):
            run("create_user", "carol", "--agency", "north", "--role", "officer", "--password", PASSWORD)
        self.assertFalse(User.objects.filter(username="carol").exists())
