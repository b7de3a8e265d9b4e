"""Sign-in drills on a controlled clock: the lockout and the no-replay rule of codes on every way in.

tests/accounts/test_sign_in.py already drills the password step (lockout, its 30 minutes, unlock, the
address lock), the second-factor step (a wrong code, a replayed TOTP code, a backup code used twice),
the idle timeout while a results page polls, the 12-hour limit, sign-out everywhere and a session
cookie replayed after sign-out. These add the other ways in: the second-factor step under a lock
(TOTP and backup codes), enrolment after an invitation, the sign-in after a password reset, and the
admin's own sign-in page.
"""

import re
from datetime import timedelta

import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import invitation_create, user_create_with_second_factor
from portal.models import AuditEntry
from tests.accounts.test_sign_in import DASHBOARD, LOGIN, SECOND, SignInTestCase, current_code
from tests.base import PASSWORD

ENROL = reverse("accounts:enrol")
LOCKED = "Too many failed sign-ins"
NEW_PASSWORD = "a-brand-new-password-2"


class SecondFactorLockoutDrills(SignInTestCase):
    def wrong_codes(self, times):
        return [self.client.post(SECOND, {"code": f"{n:06d}"}) for n in range(1, times + 1)]

    def test_five_wrong_codes_lock_and_then_the_right_code_is_refused(self):
        self.password_step()
        self.assertContains(self.wrong_codes(5)[-1], LOCKED, status_code=400)
        self.assertContains(self.client.post(SECOND, {"code": current_code(self.device)}), LOCKED, status_code=400)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_a_backup_code_is_refused_while_locked_and_stays_unused(self):
        self.password_step()
        self.wrong_codes(5)
        self.assertContains(self.client.post(SECOND, {"code": self.backup_codes[0]}), LOCKED, status_code=400)
        self.assertTrue(StaticToken.objects.filter(token=self.backup_codes[0]).exists())
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_wrong_codes_lock_the_password_step_too(self):
        self.password_step()
        self.wrong_codes(5)
        self.client.logout()
        self.assertContains(self.password_step(), LOCKED, status_code=400)

    def test_failures_at_both_steps_add_up(self):
        for _ in range(3):
            self.password_step(password="wrong password")
        self.password_step()
        self.assertContains(self.wrong_codes(2)[-1], LOCKED, status_code=400)

    def test_the_lock_at_the_second_step_ends_after_thirty_minutes(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            self.password_step()
            self.wrong_codes(5)
        with time_machine.travel(start + timedelta(minutes=29), tick=False):
            self.assertEqual(self.client.post(SECOND, {"code": current_code(self.device)}).status_code, 400)
        with time_machine.travel(start + timedelta(minutes=31), tick=False):
            self.client.logout()
            self.password_step()
            self.assertRedirects(
                self.client.post(SECOND, {"code": current_code(self.device)}), "/", fetch_redirect_response=False
            )


class InvitationEnrolmentDrills(SignInTestCase):
    """Accepting an invitation signs in with the new password; the second factor is enrolled next."""

    def accept_invitation(self, username="newcomer"):
        _, token = invitation_create(actor=self.erin, email=f"{username}@north.example", role="officer")
        response = self.client.post(
            reverse("accounts:invitation-accept", args=[token]),
            {"username": username, "password": PASSWORD, "password_again": PASSWORD},
        )
        self.assertRedirects(response, ENROL, fetch_redirect_response=False)
        self.client.get(ENROL)  # makes the device the user's app is set up with
        return TOTPDevice.objects.get(user__username=username, confirmed=False)

    def test_five_wrong_codes_at_enrolment_lock_and_then_the_right_code_is_refused(self):
        device = self.accept_invitation()
        for n in range(1, 6):
            response = self.client.post(ENROL, {"code": f"{n:06d}"})
        self.assertContains(response, LOCKED, status_code=400)
        self.assertContains(self.client.post(ENROL, {"code": current_code(device)}), LOCKED, status_code=400)
        self.assertFalse(TOTPDevice.objects.get(pk=device.pk).confirmed)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_a_locked_address_cannot_finish_an_invitation_sign_in(self):
        for name in ("u1", "u2", "u3", "u4", "u5"):
            self.password_step(username=name, password="wrong password")
        device = self.accept_invitation()
        self.assertContains(self.client.post(ENROL, {"code": current_code(device)}), LOCKED, status_code=400)
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_the_enrolment_code_cannot_be_replayed_at_the_next_sign_in(self):
        device = self.accept_invitation()
        code = current_code(device)
        self.assertContains(self.client.post(ENROL, {"code": code}), "Your backup codes")
        self.client.post(reverse("accounts:logout"))
        self.password_step(username="newcomer")
        self.assertContains(self.client.post(SECOND, {"code": code}), "already used", status_code=400)


class PasswordResetSignInDrills(SignInTestCase):
    def reset_password(self):
        self.frank.email = "frank@north.example"
        self.frank.save()
        resetting = self.client_class()
        resetting.post(reverse("accounts:password-reset"), {"email": "frank@north.example"})
        link = re.search(r"http://testserver(\S+)", mail.outbox[-1].body).group(1)
        form_page = resetting.get(link, follow=True)
        response = resetting.post(
            form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
        )
        self.assertRedirects(response, reverse("accounts:password-reset-complete"))

    def test_a_password_reset_does_not_lift_a_lockout(self):
        for _ in range(5):
            self.password_step(password="wrong password")
        self.reset_password()
        self.assertContains(self.password_step(password=NEW_PASSWORD), LOCKED, status_code=400)

    def test_a_code_used_before_the_reset_is_refused_after_it(self):
        code = current_code(self.device)
        self.full_sign_in(code)
        self.reset_password()
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)  # the reset ended this session
        self.assertRedirects(self.password_step(password=NEW_PASSWORD), SECOND)
        self.assertContains(self.client.post(SECOND, {"code": code}), "already used", status_code=400)

    def test_the_second_step_after_a_reset_locks_after_five_wrong_codes(self):
        self.reset_password()
        self.password_step(password=NEW_PASSWORD)
        for n in range(1, 6):
            response = self.client.post(SECOND, {"code": f"{n:06d}"})
        self.assertContains(response, LOCKED, status_code=400)
        self.assertContains(self.client.post(SECOND, {"code": self.backup_codes[0]}), LOCKED, status_code=400)


class AdminSignInDrills(SignInTestCase):
    """Platform staff sign in through the portal's sign-in, the one with the lockout, rate limit and audit."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        created = user_create_with_second_factor(
            username="pat", password=PASSWORD, role="platform_staff", preenrol=True
        )
        cls.staff_device = TOTPDevice.objects.get(user=created.user)

    def test_the_admin_sign_in_page_leads_to_the_portal_sign_in(self):
        response = self.client.get(reverse("admin:login"), {"next": "/admin/"})
        self.assertRedirects(response, f"{LOGIN}?next=/admin/", fetch_redirect_response=False)

    def test_a_locked_user_cannot_sign_in_through_the_admin_page(self):
        for _ in range(5):
            self.password_step(username="pat", password="wrong password")
        self.client.post(
            reverse("admin:login"),
            {
                "username": "pat",
                "password": PASSWORD,
                "otp_device": self.staff_device.persistent_id,
                "otp_token": current_code(self.staff_device),
            },
        )
        self.assertNotEqual(self.client.get(reverse("admin:index")).status_code, 200)

    def test_staff_reach_the_admin_after_the_portal_sign_in(self):
        self.client.post(f"{LOGIN}?next=/admin/", {"username": "pat", "password": PASSWORD})
        response = self.client.post(SECOND, {"code": current_code(self.staff_device)})
        self.assertRedirects(response, "/admin/")
        self.assertTrue(AuditEntry.objects.filter(action="sign_in", actor__username="pat").exists())


class SessionCookieDrills(SignInTestCase):
    def test_a_cookie_replayed_after_the_idle_timeout_is_refused(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            self.full_sign_in()
        cookie = self.client.cookies["sessionid"].value
        with time_machine.travel(start + timedelta(minutes=31), tick=False):
            self.assertEqual(self.client.get(DASHBOARD).status_code, 302)
            self.client.cookies["sessionid"] = cookie
            self.assertEqual(self.client.get(DASHBOARD).status_code, 302)

    def test_a_cookie_replayed_after_sign_out_everywhere_is_refused(self):
        self.full_sign_in()
        cookie = self.client.cookies["sessionid"].value
        self.client.post(reverse("accounts:logout-everywhere"))
        self.client.cookies["sessionid"] = cookie
        self.assertEqual(self.client.get(DASHBOARD).status_code, 302)
