"""Password reset by e-mail link: the second factor is still asked, other sessions end, requests are limited."""

import re

from django.core import mail
from django.test import TestCase, override_settings
from django.urls import reverse

from portal.models import AuditEntry
from tests.base import PASSWORD, AgencyFixtureMixin, sign_in

NEW_PASSWORD = "a-brand-new-password-2"


class PasswordResetTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.alice.email = "alice@north.example"
        cls.alice.save()

    def request_link(self, email="alice@north.example"):
        return self.client.post(reverse("accounts:password-reset"), {"email": email})

    def test_the_link_sets_a_new_password_and_the_second_factor_is_still_asked(self):
        other_session = self.client_class()
        sign_in(other_session, self.alice)
        self.assertRedirects(self.request_link(), reverse("accounts:password-reset-done"))
        link = re.search(r"http://testserver(\S+)", mail.outbox[-1].body).group(1)
        form_page = self.client.get(link, follow=True)
        response = self.client.post(
            form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
        )
        self.assertRedirects(response, reverse("accounts:password-reset-complete"))
        self.assertEqual(other_session.get(reverse("portal:dashboard")).status_code, 302)  # ended
        response = self.client.post(reverse("accounts:login"), {"username": "alice", "password": NEW_PASSWORD})
        self.assertRedirects(response, reverse("accounts:second-factor"))  # not signed in yet: second factor first
        self.assertEqual(self.client.get(reverse("portal:dashboard")).status_code, 302)
        self.assertTrue(AuditEntry.objects.filter(action="password_reset", actor=self.alice).exists())

    def test_an_unknown_address_gets_the_same_answer_and_no_mail(self):
        self.assertRedirects(self.request_link("nobody@nowhere.example"), reverse("accounts:password-reset-done"))
        self.assertEqual(len(mail.outbox), 0)

    @override_settings(PUBLIC_REQUESTS_PER_MINUTE=3)
    def test_requests_from_one_address_are_rate_limited(self):
        for _ in range(3):
            self.request_link()
        response = self.request_link()
        self.assertContains(response, "Too many requests", status_code=429)
        self.assertEqual(len(mail.outbox), 3)


class SignInRateLimitTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    @override_settings(SIGN_INS_PER_MINUTE=3, SIGN_IN_FAILURE_LIMIT=100)
    def test_sign_in_attempts_from_one_address_are_rate_limited(self):
        for name in ("a1", "a2", "a3"):
            self.client.post(reverse("accounts:login"), {"username": name, "password": "x" * 12})
        response = self.client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
        self.assertContains(response, "Too many sign-in attempts", status_code=429)
        self.assertTrue(AuditEntry.objects.filter(action="rate_limited").exists())
