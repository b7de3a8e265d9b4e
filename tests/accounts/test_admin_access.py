"""Django's admin is for platform staff: agencies, users, gallery sharing; no probe, face or candidate."""

from django.test import TestCase
from django.urls import reverse

from accounts.services import user_create
from tests.base import PASSWORD, AgencyFixtureMixin, sign_in


class PlatformStaffAdminTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.staff = user_create(username="pat", password=PASSWORD, role="platform_staff")

    def test_platform_staff_manage_agencies_users_and_galleries(self):
        sign_in(self.client, self.staff)
        for name in (
            "accounts_agency_changelist",
            "accounts_user_changelist",
            "search_gallery_changelist",
            "search_searchjob_changelist",
        ):
            self.assertEqual(self.client.get(reverse(f"admin:{name}")).status_code, 200, name)

    def test_platform_staff_see_no_probe_face_or_candidate(self):
        sign_in(self.client, self.staff)
        for name in (
            "search_probe_changelist",
            "search_faceimage_changelist",
            "search_candidate_changelist",
            "search_probeface_changelist",
            "portal_case_changelist",
        ):
            self.assertEqual(self.client.get(reverse(f"admin:{name}")).status_code, 403, name)

    def test_agency_users_have_no_admin(self):
        sign_in(self.client, self.alice)
        response = self.client.get(reverse("admin:index"))
        self.assertEqual(response.status_code, 302)
