"""The API token pages: made after both factors, shown once, listed with last use, revoked by the user or by
their agency admin from the seats page."""

from django.test import TestCase
from django.urls import reverse

from accounts import tokens
from accounts.models import ApiToken
from portal.models import AuditEntry
from tests.base import AgencyFixtureMixin, sign_in


class TokenPageTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_needs_both_factors(self):
        self.client.force_login(self.alice)  # the password step only
        response = self.client.post(reverse("accounts:tokens"), {"name": "script"})
        self.assertRedirects(response, reverse("accounts:second-factor"), fetch_redirect_response=False)
        self.assertFalse(ApiToken.objects.exists())

    def test_made_shown_once_then_listed(self):
        sign_in(self.client, self.alice)
        response = self.client.post(reverse("accounts:tokens"), {"name": "export", "days": "30"})
        self.assertEqual(response.status_code, 200)
        token = response.context["made"].token
        self.assertContains(response, token)
        self.assertEqual(response["Cache-Control"], "private, no-store")
        again = self.client.get(reverse("accounts:tokens"))
        self.assertNotContains(again, token)
        self.assertContains(again, "export")
        self.assertTrue(AuditEntry.objects.filter(action=AuditEntry.Action.API_TOKEN_CREATED, actor=self.alice))

    def test_bad_input_is_a_form_error(self):
        sign_in(self.client, self.alice)
        for data in ({"name": ""}, {"name": "x", "days": "400"}, {"name": "x", "days": "soon"}):
            response = self.client.post(reverse("accounts:tokens"), data)
            self.assertEqual(response.status_code, 400, data)
            self.assertContains(response, "form-error", status_code=400)
        self.assertFalse(ApiToken.objects.exists())

    def test_revoked_by_the_user(self):
        made = tokens.api_token_create(user=self.alice, name="mine")
        sign_in(self.client, self.alice)
        response = self.client.post(reverse("accounts:token-revoke", args=[made.api_token.code]))
        self.assertRedirects(response, reverse("accounts:tokens"), fetch_redirect_response=False)
        made.api_token.refresh_from_db()
        self.assertEqual(made.api_token.revoked_by, self.alice)

    def test_revoked_by_the_agency_admin_not_by_another_agency(self):
        made = tokens.api_token_create(user=self.alice, name="hers")
        sign_in(self.client, self.dave)
        self.assertEqual(
            self.client.post(reverse("accounts:token-revoke", args=[made.api_token.code])).status_code, 404
        )
        sign_in(self.client, self.bob)  # a colleague, not the admin
        self.assertEqual(
            self.client.post(reverse("accounts:token-revoke", args=[made.api_token.code])).status_code, 404
        )
        made.api_token.refresh_from_db()
        self.assertIsNone(made.api_token.revoked_at)
        sign_in(self.client, self.erin)
        self.assertContains(self.client.get(reverse("accounts:seats")), "hers")
        response = self.client.post(reverse("accounts:token-revoke", args=[made.api_token.code]))
        self.assertRedirects(response, reverse("accounts:seats"), fetch_redirect_response=False)
        made.api_token.refresh_from_db()
        self.assertEqual(made.api_token.revoked_by, self.erin)
