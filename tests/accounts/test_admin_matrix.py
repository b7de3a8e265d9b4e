"""Least privilege in the admin: every registered model admin × every role, and the pages that must not
exist (issue 14, finding 1).

Adding a model admin without a row here fails `test_every_registered_model_admin_has_a_row`, so nobody
opens a page of the admin to a role by accident.
"""

from django.contrib import admin
from django.test import TestCase
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from accounts.services import PLATFORM_STAFF_PERMISSIONS, backup_codes_create, user_create
from search.models import SearchJob
from search.services import probe_submit
from tests.base import PASSWORD, AgencyFixtureMixin, photo_bytes, sign_in

ROLES = ("platform_staff", "privacy_officer", "superuser", "officer")
# model label: {role: (changelist status, add status)}; 302 = sent to sign in (no admin at all for the role).
NO_ADMIN = (302, 302)
MATRIX = {
    "accounts.agency": {"platform_staff": (200, 200), "superuser": (200, 200)},
    "accounts.agencypolicy": {"platform_staff": (200, 200), "superuser": (200, 200)},
    "accounts.invitation": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "accounts.user": {"platform_staff": (200, 403), "superuser": (200, 403)},
    "otp_totp.totpdevice": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "otp_static.staticdevice": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "portal.case": {"platform_staff": (403, 403), "superuser": (200, 200)},
    "portal.auditentry": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "search.gallery": {"platform_staff": (200, 403), "superuser": (200, 200)},
    "search.profile": {"platform_staff": (403, 403), "superuser": (200, 200)},
    "search.faceimage": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "search.probe": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "search.probeface": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "search.searchjob": {"platform_staff": (200, 403), "superuser": (200, 403)},
    "search.candidate": {"platform_staff": (403, 403), "superuser": (200, 403)},
    "search.offensecategory": {"platform_staff": (200, 200), "superuser": (200, 200)},
}
# What no admin page may show to anyone: the fields that hand out power, and second-factor secrets.
POWER_FIELDS = (
    'name="is_superuser"',
    'name="is_staff"',
    'name="groups"',
    'name="user_permissions"',
    'name="password"',
    "password/",
)


class AdminMatrixTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.users = {
            "platform_staff": user_create(username="pat", password=PASSWORD, role="platform_staff"),
            "privacy_officer": user_create(username="priya", password=PASSWORD, role="privacy_officer"),
            "superuser": User.objects.create_superuser("root", "root@example.org", PASSWORD),
            "officer": cls.alice,
        }
        cls.totp = TOTPDevice.objects.create(user=cls.alice, name="phone", confirmed=True)
        cls.codes = backup_codes_create(user=cls.alice)

    def test_every_registered_model_admin_has_a_row(self):
        registered = {model._meta.label_lower for model in admin.site._registry}
        self.assertEqual(registered, set(MATRIX), "add a row to MATRIX for each new model admin")

    def test_each_role_reaches_exactly_its_pages(self):
        for role in ROLES:
            self.client.logout()
            sign_in(self.client, self.users[role])
            for label, expected_by_role in MATRIX.items():
                app, model = label.split(".")
                expected = expected_by_role.get(role, NO_ADMIN)
                for page, status in zip(("changelist", "add"), expected, strict=True):
                    with self.subTest(role=role, model=label, page=page):
                        response = self.client.get(reverse(f"admin:{app}_{model}_{page}"))
                        self.assertEqual(response.status_code, status)
                        if status == 302:
                            self.assertIn("/login/", response["Location"])  # the admin's, which leads to the portal's

    def test_the_superuser_was_made_by_createsuperuser_only(self):
        root = self.users["superuser"]
        self.assertTrue(root.is_superuser)
        self.assertEqual((root.role, root.agency), ("platform_staff", None))
        for role in ("platform_staff", "privacy_officer", "officer"):
            self.assertFalse(self.users[role].is_superuser, role)

    def test_staff_cannot_make_themselves_superuser(self):
        staff = self.users["platform_staff"]
        sign_in(self.client, staff)
        url = reverse("admin:accounts_user_change", args=[staff.pk])
        page = self.client.get(url).content.decode()
        for field in POWER_FIELDS:
            self.assertNotIn(field, page)
        # A forged form with the fields anyway: they are not part of the form, so nothing changes.
        self.client.post(
            url,
            {
                "first_name": "Pat",
                "last_name": "",
                "email": "pat@example.org",
                "is_superuser": "on",
                "is_staff": "on",
                "user_permissions": "1",
                "groups": "1",
            },
        )
        staff.refresh_from_db()
        self.assertFalse(staff.is_superuser)
        self.assertEqual(staff.first_name, "Pat")
        self.assertFalse(staff.groups.exists())
        self.assertEqual(
            sorted(staff.user_permissions.values_list("codename", flat=True)), sorted(PLATFORM_STAFF_PERMISSIONS)
        )

    def test_no_password_page_for_anyone(self):
        for role in ("platform_staff", "superuser"):
            self.client.logout()
            sign_in(self.client, self.users[role])
            for url in (
                f"/admin/accounts/user/{self.alice.pk}/password/",
                f"/admin/accounts/user/{self.alice.pk}/password/change/",
            ):
                response = self.client.get(url, follow=True)
                self.assertNotIn('type="password"', response.content.decode(), (role, url))
                self.assertNotEqual(response.redirect_chain[-1:], [], (role, url))  # the admin's catch-all
                self.assertNotIn("password", response.redirect_chain[-1][0], (role, url))
            page = self.client.get(reverse("admin:accounts_user_change", args=[self.alice.pk])).content.decode()
            for field in POWER_FIELDS:
                self.assertNotIn(field, page, role)

    def test_no_page_shows_an_authenticator_key_or_a_backup_code(self):
        sign_in(self.client, self.users["superuser"])
        pages = [
            reverse("admin:otp_totp_totpdevice_changelist"),
            reverse("admin:otp_totp_totpdevice_change", args=[self.totp.pk]),
            reverse("admin:otp_static_staticdevice_changelist"),
        ]
        static = StaticDevice.objects.get(user=self.alice)
        pages.append(reverse("admin:otp_static_staticdevice_change", args=[static.pk]))
        self.assertEqual(StaticToken.objects.filter(device=static).count(), len(self.codes))
        for url in pages:
            page = self.client.get(url).content.decode()
            self.assertNotIn(self.totp.key, page, url)
            for code in self.codes:
                self.assertNotIn(code, page, url)
        # django-otp's own QR-code and config pages are gone with its admin.
        self.assertEqual(self.client.get(f"/admin/otp_totp/totpdevice/{self.totp.pk}/config/").status_code, 302)

    def test_staff_see_searches_as_metadata_only(self):
        job = probe_submit(
            case=self.case,
            uploaded_by=self.alice,
            data=photo_bytes("img2.jpg"),
            original_name="secret-informant.jpg",
            justification="Informant Jones said the man at the bar",
        )
        sign_in(self.client, self.users["platform_staff"])
        for url in (
            reverse("admin:search_searchjob_changelist"),
            reverse("admin:search_searchjob_change", args=[job.pk]),
        ):
            response = self.client.get(url)
            self.assertEqual(response.status_code, 200)
            page = response.content.decode()
            self.assertIn(str(job.code), page)
            for secret in (
                "Informant Jones",
                "secret-informant",
                self.case.number,
                self.case.title,
                job.probe.image.name,
            ):
                self.assertNotIn(secret, page, url)
        self.assertEqual(SearchJob.objects.get(pk=job.pk).justification, "Informant Jones said the man at the bar")
