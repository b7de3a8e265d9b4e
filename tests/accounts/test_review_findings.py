"""Findings 2 and 5 of the security review, each reproduced: the client address behind a proxy, the
licence and deactivation on every request, the `next` corpus, the session key at each factor, and one's
own password with both factors."""

from datetime import timedelta

import time_machine
from django.test import RequestFactory, SimpleTestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.services import AccountError, agency_set_seats, invitation_accept, invitation_create, user_deactivate
from portal.client_address import client_address
from portal.models import AuditEntry
from tests.accounts.test_sign_in import DASHBOARD, LOGIN, SECOND, SignInTestCase, current_code
from tests.base import PASSWORD

PROXY = "10.0.0.5"


def address(remote: str, forwarded: str | None = None, **settings) -> str | None:
    meta = {"REMOTE_ADDR": remote} | ({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {})
    with override_settings(**settings):
        return client_address(RequestFactory().get("/", **meta))


class ClientAddressTests(SimpleTestCase):
    def test_without_a_trusted_proxy_the_connection_is_the_client(self):
        self.assertEqual(address("203.0.113.9", "198.51.100.1", TRUSTED_PROXIES=[]), "203.0.113.9")

    def test_a_forged_header_from_an_untrusted_address_is_ignored(self):
        self.assertEqual(address("203.0.113.9", "198.51.100.1", TRUSTED_PROXIES=[PROXY]), "203.0.113.9")

    def test_through_a_trusted_proxy_the_forwarded_client_is_the_client(self):
        self.assertEqual(address(PROXY, "198.51.100.7", TRUSTED_PROXIES=[PROXY]), "198.51.100.7")
        self.assertEqual(address(PROXY, "198.51.100.7", TRUSTED_PROXIES=["10.0.0.0/8"]), "198.51.100.7")

    def test_read_right_to_left_only_through_trusted_hops(self):
        # The client wrote a forged first entry; the proxy appended the address it really saw.
        forged = "1.2.3.4, 198.51.100.7"
        self.assertEqual(address(PROXY, forged, TRUSTED_PROXIES=[PROXY]), "198.51.100.7")
        # Two proxies in a row (edge 10.0.0.9 → inner 10.0.0.5): both trusted, the client is left of them.
        self.assertEqual(
            address(PROXY, "1.2.3.4, 198.51.100.7, 10.0.0.9", TRUSTED_PROXIES=["10.0.0.0/24"]), "198.51.100.7"
        )
        # Every hop trusted: the left-most is as far as the chain is known.
        self.assertEqual(address(PROXY, "10.0.0.8, 10.0.0.9", TRUSTED_PROXIES=["10.0.0.0/24"]), "10.0.0.8")

    def test_malformed_and_odd_values(self):
        self.assertEqual(address(PROXY, "", TRUSTED_PROXIES=[PROXY]), PROXY)
        self.assertEqual(address(PROXY, "not-an-address", TRUSTED_PROXIES=[PROXY]), PROXY)
        self.assertEqual(address(PROXY, "garbage, 198.51.100.7", TRUSTED_PROXIES=[PROXY]), "198.51.100.7")
        self.assertEqual(address(PROXY, "198.51.100.7:5123", TRUSTED_PROXIES=[PROXY]), "198.51.100.7")
        self.assertEqual(address(PROXY, "[2001:db8::1]:443", TRUSTED_PROXIES=[PROXY]), "2001:db8::1")
        self.assertEqual(address("::ffff:10.0.0.5", "198.51.100.7", TRUSTED_PROXIES=[PROXY]), "198.51.100.7")
        self.assertIsNone(address("", "198.51.100.7", TRUSTED_PROXIES=[PROXY]))

    def test_a_bad_setting_is_refused_loudly(self):
        from django.core.exceptions import ImproperlyConfigured

        with self.assertRaises(ImproperlyConfigured):
            address(PROXY, "198.51.100.7", TRUSTED_PROXIES=["10.0.0.300"])


@override_settings(TRUSTED_PROXIES=[PROXY])
class LockoutBehindAProxyTests(SignInTestCase):
    """Behind the proxy everyone arrived from one address: five wrong passwords by anyone locked everyone."""

    def attempt(self, username, client_ip, password="wrong password, wrong"):
        return self.client.post(
            LOGIN, {"username": username, "password": password}, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=client_ip
        )

    def test_an_attackers_failures_lock_the_attacker_not_everyone(self):
        for _ in range(5):
            self.attempt("mallory", "198.51.100.66")
        self.assertContains(self.attempt("frank", "198.51.100.66", PASSWORD), "locked", status_code=400)
        # frank, from his own address behind the same proxy, signs in.
        response = self.attempt("frank", "203.0.113.20", PASSWORD)
        self.assertRedirects(response, SECOND, fetch_redirect_response=False)
        addresses = set(AuditEntry.objects.filter(action="sign_in_failed").values_list("ip_address", flat=True))
        self.assertEqual(addresses, {"198.51.100.66"})

    def test_the_account_is_locked_from_every_address(self):
        for number in range(5):
            self.attempt("frank", f"198.51.100.{number + 1}")
        self.assertContains(self.attempt("frank", "203.0.113.20", PASSWORD), "locked", status_code=400)

    def test_a_forged_header_from_outside_the_proxy_changes_nothing(self):
        for number in range(5):
            self.client.post(
                LOGIN,
                {"username": "mallory", "password": "wrong password, wrong"},
                REMOTE_ADDR="198.51.100.66",
                HTTP_X_FORWARDED_FOR=f"192.0.2.{number}",
            )
        self.assertEqual(
            set(AuditEntry.objects.filter(action="sign_in_failed").values_list("ip_address", flat=True)),
            {"198.51.100.66"},
        )


class EveryRequestTests(SignInTestCase):
    def test_the_licence_end_ends_an_open_session(self):
        self.full_sign_in()
        self.assertEqual(self.client.get(DASHBOARD).status_code, 200)
        # The licence ended yesterday while the session was open (platform staff set the date).
        agency_set_seats(agency=self.north, seats=5, licence_until=timezone.localdate() - timedelta(days=1))
        response = self.client.get(DASHBOARD)
        self.assertRedirects(response, f"{LOGIN}?next={DASHBOARD}", fetch_redirect_response=False)
        self.assertIn("licence", AuditEntry.objects.filter(action="session_expired").latest("id").detail)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_an_invitation_accepted_after_the_licence_end_is_refused(self):
        _, token = invitation_create(actor=self.erin, email="new@north.example", role="officer")
        agency_set_seats(agency=self.north, seats=5, licence_until=timezone.localdate() - timedelta(days=1))
        with self.assertRaisesMessage(AccountError, "licence"):
            invitation_accept(token=token, username="newcomer", password=PASSWORD)
        page = self.client.get(reverse("accounts:invitation-accept", args=[token]))
        self.assertContains(page, "licence", status_code=410)

    def test_deactivation_ends_an_open_session(self):
        self.full_sign_in()
        user_deactivate(actor=self.erin, user=self.frank)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)


class NextValueTests(SignInTestCase):
    """`?next=cases` gave a 500 after a valid second factor, and the code was spent."""

    CORPUS = [
        "cases",
        "/cases/",
        "//evil.example/",
        "https://evil.example/",
        "http:/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "///evil.example",
        " /cases/",
        "%2F%2Fevil.example",
        "/%0d%0aSet-Cookie:x=1",
        "portal:dashboard",
        "accounts:logout",
        "/" + "a" * 3000,
        "\x00",
        "?",
        "#",
        "/admin/",
        "data:text/html,hi",
        "",
        "..",
        "../../etc/passwd",
        "/accounts/login/?next=//evil.example",
    ]

    def test_no_next_value_gives_a_server_error_or_leaves_the_portal(self):
        for value in self.CORPUS:
            with self.subTest(next=value):
                self.client.logout()
                self.client.post(f"{LOGIN}?next=x", {"username": "frank", "password": PASSWORD, "next": value})
                with time_machine.travel(timezone.now() + timedelta(seconds=60 * (self.CORPUS.index(value) + 1))):
                    response = self.client.post(SECOND, {"code": current_code(self.device)})
                self.assertEqual(response.status_code, 302)
                location = response["Location"]
                self.assertTrue(location.startswith("/") and not location.startswith(("//", "/\\")), location)
                if value.strip() in ("/cases/", "/admin/"):
                    self.assertEqual(location, value.strip())
                elif not value.startswith("/") or value.startswith(("//", "/\\")):
                    self.assertEqual(location, "/")


class SessionKeyTests(SignInTestCase):
    def test_the_session_key_changes_at_each_factor(self):
        self.client.get(LOGIN)
        keys = [self.client.session.session_key]
        self.password_step()
        keys.append(self.client.session.session_key)
        self.client.post(SECOND, {"code": current_code(self.device)})
        keys.append(self.client.session.session_key)
        self.assertEqual(len(set(keys)), 3, keys)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 200)


class PasswordChangeTests(SignInTestCase):
    URL = reverse("accounts:password-change")

    def test_both_factors_change_ones_own_password_and_end_other_sessions(self):
        other = self.client_class()
        other.post(LOGIN, {"username": "frank", "password": PASSWORD})
        with time_machine.travel(timezone.now() - timedelta(minutes=2)):
            other.post(SECOND, {"code": current_code(self.device)})
        self.full_sign_in()
        new = "another-long-password-2"
        with time_machine.travel(timezone.now() + timedelta(minutes=2)):
            wrong = self.client.post(
                self.URL,
                {"current_password": PASSWORD, "code": "000000", "new_password": new, "new_password_again": new},
            )
            self.assertContains(wrong, "code is not right", status_code=400)
            response = self.client.post(
                self.URL,
                {
                    "current_password": PASSWORD,
                    "code": self.backup_codes[0],
                    "new_password": new,
                    "new_password_again": new,
                },
            )
            self.assertRedirects(response, DASHBOARD, fetch_redirect_response=False)
            self.frank.refresh_from_db()
            self.assertTrue(self.frank.check_password(new))
            self.assertEqual(self.client.get(DASHBOARD).status_code, 200)  # this session goes on
            self.assertEqual(other.get(DASHBOARD).status_code, 302)  # every other one ended
        self.assertTrue(AuditEntry.objects.filter(action="password_changed", actor=self.frank).exists())

    def test_the_password_step_alone_cannot_change_it(self):
        self.password_step()
        response = self.client.post(
            self.URL,
            {
                "current_password": PASSWORD,
                "code": self.backup_codes[0],
                "new_password": "x" * 20,
                "new_password_again": "x" * 20,
            },
        )
        self.assertRedirects(response, SECOND, fetch_redirect_response=False)
        self.frank.refresh_from_db()
        self.assertTrue(self.frank.check_password(PASSWORD))
