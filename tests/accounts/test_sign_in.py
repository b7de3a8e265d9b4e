"""Sign-in with password and second factor, lockout, licence end, and session rules, on a controlled clock."""

from datetime import date, timedelta

import time_machine
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import agency_set_seats, user_create_with_second_factor, user_deactivate
from portal.models import AuditEntry
from tests.base import PASSWORD, AgencyFixtureMixin

LOGIN = reverse("accounts:login")
SECOND = reverse("accounts:second-factor")
DASHBOARD = reverse("portal:dashboard")


def current_code(device: TOTPDevice, at=None) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if at is not None:
        totp.time = at.timestamp()
    return f"{totp.token():0{device.digits}d}"


class SignInTestCase(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        created = user_create_with_second_factor(
            username="frank", password=PASSWORD, role="officer", agency=cls.north, preenrol=True
        )
        cls.frank, cls.backup_codes = created.user, created.backup_codes
        cls.device = TOTPDevice.objects.get(user=cls.frank)

    def password_step(self, username="frank", password=PASSWORD):
        return self.client.post(LOGIN, {"username": username, "password": password})

    def full_sign_in(self, code=None):
        self.password_step()
        return self.client.post(SECOND, {"code": code or current_code(self.device)})


class SignInTests(SignInTestCase):
    def test_the_page_states_the_restriction(self):
        self.assertContains(self.client.get(LOGIN), "authorised law-enforcement")

    def test_password_then_code_signs_in_and_records_it(self):
        response = self.password_step()
        self.assertRedirects(response, SECOND)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)  # not yet: second factor missing
        response = self.client.post(SECOND, {"code": current_code(self.device)})
        self.assertRedirects(response, "/", target_status_code=200)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 200)
        event = AuditEntry.objects.filter(action="sign_in").get()
        self.assertEqual((event.actor, event.ip_address, event.detail), (self.frank, "127.0.0.1", "TOTP"))

    def test_a_wrong_password_gets_a_clear_message_and_is_recorded(self):
        response = self.password_step(password="wrong password")
        self.assertContains(response, "The username or password is not right", status_code=400)
        self.assertTrue(AuditEntry.objects.filter(action="sign_in_failed", username="frank").exists())

    def test_a_new_session_id_at_sign_in(self):
        self.client.get(LOGIN)
        self.client.session.save()
        before = self.client.session.session_key
        self.password_step()
        self.assertNotEqual(self.client.session.session_key, before)

    def test_a_wrong_code_is_refused(self):
        self.password_step()
        response = self.client.post(SECOND, {"code": "000000"})
        self.assertContains(response, "That code is not right", status_code=400)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_a_code_cannot_be_replayed(self):
        code = current_code(self.device)
        self.full_sign_in(code)
        self.client.post(reverse("accounts:logout"))
        self.password_step()
        response = self.client.post(SECOND, {"code": code})
        self.assertContains(response, "already used", status_code=400)

    def test_a_backup_code_works_once(self):
        self.password_step()
        self.assertRedirects(
            self.client.post(SECOND, {"code": self.backup_codes[0]}), "/", fetch_redirect_response=False
        )
        self.assertFalse(StaticToken.objects.filter(token=self.backup_codes[0]).exists())
        self.client.post(reverse("accounts:logout"))
        self.password_step()
        self.assertEqual(self.client.post(SECOND, {"code": self.backup_codes[0]}).status_code, 400)

    def test_a_user_without_a_device_enrols_one_at_first_sign_in(self):
        response = self.password_step(username="alice")
        self.assertRedirects(response, reverse("accounts:enrol"))
        page = self.client.get(reverse("accounts:enrol"))
        self.assertContains(page, "Set up your second factor")
        qr = self.client.get(reverse("accounts:enrol-qr"))
        self.assertEqual((qr["Content-Type"], qr["Cache-Control"]), ("image/svg+xml", "private, no-store"))
        device = TOTPDevice.objects.get(user=self.alice, confirmed=False)
        response = self.client.post(reverse("accounts:enrol"), {"code": current_code(device)})
        self.assertContains(response, "Your backup codes")
        self.assertEqual(len(response.context["codes"]), 10)
        self.assertTrue(TOTPDevice.objects.get(pk=device.pk).confirmed)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 200)

    def test_a_deactivated_users_live_session_ends(self):
        self.full_sign_in()
        user_deactivate(actor=self.erin, user=self.frank)
        response = self.client.get(DASHBOARD)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(LOGIN))

    def test_sign_out_everywhere_ends_every_session(self):
        from django.test import Client

        other_device = Client()
        self.full_sign_in()
        other_device.post(LOGIN, {"username": "frank", "password": PASSWORD})
        self.client.post(reverse("accounts:logout-everywhere"))
        self.assertEqual(other_device.get(DASHBOARD).status_code, 302)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_a_cookie_replayed_after_sign_out_is_refused(self):
        self.full_sign_in()
        cookie = self.client.cookies["sessionid"].value
        self.client.post(reverse("accounts:logout"))
        self.client.cookies["sessionid"] = cookie
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)


class LockoutTests(SignInTestCase):
    def fail(self, times, username="frank"):
        for _ in range(times):
            self.password_step(username=username, password="wrong password")

    def test_five_failures_in_fifteen_minutes_lock_the_user_even_with_the_right_password(self):
        self.fail(5)
        response = self.password_step()
        self.assertContains(response, "Too many failed sign-ins", status_code=400)
        self.assertTrue(AuditEntry.objects.filter(action="locked_out", username="frank").exists())

    def test_four_failures_do_not_lock(self):
        self.fail(4)
        self.assertRedirects(self.password_step(), SECOND)

    def test_failures_spread_over_more_than_fifteen_minutes_do_not_lock(self):
        start = timezone.now()
        for minutes in (0, 5, 10, 16, 17):
            with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
                self.fail(1)
        with time_machine.travel(start + timedelta(minutes=18), tick=False):
            self.assertRedirects(self.password_step(), SECOND)

    def test_the_lock_ends_after_thirty_minutes(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            self.fail(5)
        with time_machine.travel(start + timedelta(minutes=29), tick=False):
            self.assertEqual(self.password_step().status_code, 400)
        with time_machine.travel(start + timedelta(minutes=31), tick=False):
            self.assertRedirects(self.password_step(), SECOND)

    def test_an_agency_admin_unlocks_the_user(self):
        self.fail(5)
        self.client.logout()
        from tests.base import sign_in

        sign_in(self.client, self.erin)
        seats = self.client.get(reverse("accounts:seats"))
        self.assertContains(seats, "Locked until")
        self.client.post(reverse("accounts:user-unlock", args=[self.frank.code]))
        self.client.logout()
        self.assertRedirects(self.password_step(), SECOND)

    def test_failures_from_one_address_lock_that_address_for_every_username(self):
        for name in ("u1", "u2", "u3", "u4", "u5"):
            self.fail(1, username=name)
        self.assertContains(self.password_step(), "Too many failed sign-ins", status_code=400)


class LicenceTests(SignInTestCase):
    def test_users_cannot_sign_in_after_the_licence_end_and_the_data_stays(self):
        agency_set_seats(agency=self.north, seats=10, licence_until=date(2026, 6, 30))
        with time_machine.travel(timezone.make_aware(timezone.datetime(2026, 7, 1, 9, 0)), tick=False):
            response = self.password_step()
        self.assertContains(response, "ended on 30 June 2026", status_code=400)
        self.assertContains(response, "data is kept", status_code=400)
        with time_machine.travel(timezone.make_aware(timezone.datetime(2026, 6, 30, 9, 0)), tick=False):
            self.assertRedirects(self.password_step(), SECOND)


class SessionTimeoutTests(SignInTestCase):
    def test_idle_timeout_after_thirty_minutes_even_while_a_page_polls(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            self.full_sign_in()
        with self.captureOnCommitCallbacks(execute=False):
            from search.services import probe_submit
            from tests.base import photo_bytes

            job = probe_submit(case=self.case, uploaded_by=self.frank, data=photo_bytes("img1.jpg"))
        status_url = reverse("search:job-status", args=[job.code])
        for minutes in (10, 20, 29):
            with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
                self.assertEqual(self.client.get(status_url).status_code, 200)
        with time_machine.travel(start + timedelta(minutes=31), tick=False):
            response = self.client.get(status_url)
        self.assertEqual(response.status_code, 401)
        self.assertTrue(response.json()["signed_out"])
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_activity_keeps_the_session_alive(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            self.full_sign_in()
        for minutes in (25, 50, 75):
            with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
                self.assertEqual(self.client.get(DASHBOARD).status_code, 200)

    def test_a_session_lasts_at_most_twelve_hours(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            self.full_sign_in()
        for minutes in range(25, 12 * 60, 25):  # active all day, never idle for 30 minutes
            with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
                self.assertEqual(self.client.get(DASHBOARD).status_code, 200)
        with time_machine.travel(start + timedelta(hours=12, minutes=1), tick=False):
            response = self.client.get(DASHBOARD)
        self.assertEqual(response.status_code, 302)
