"""Invitations: a single-use link that holds a seat, expires after 72 hours, and leads to a second factor."""

import re
from datetime import timedelta

import time_machine
from django.core import mail
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, User
from accounts.services import AccountError, agency_set_seats, invitation_create, seats_used
from portal.models import AuditEntry
from tests.base import PASSWORD, AgencyFixtureMixin, sign_in


class InvitationTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()  # North: 3 of 5 seats used

    def invite(self, email="newcomer@north.example", role="officer"):
        sign_in(self.client, self.erin)
        response = self.client.post(reverse("accounts:invitation-send"), {"email": email, "role": role})
        self.client.logout()
        return response

    def link(self) -> str:
        return re.search(r"http://testserver(/accounts/invitations/\S+/)", mail.outbox[-1].body).group(1)

    def test_the_invitee_joins_and_is_sent_to_set_up_a_second_factor(self):
        self.assertRedirects(self.invite(), reverse("accounts:seats"), fetch_redirect_response=False)
        self.assertEqual(mail.outbox[-1].to, ["newcomer@north.example"])
        self.assertEqual(seats_used(self.north), 4)  # the pending invitation holds a seat
        link = self.link()
        self.assertContains(self.client.get(link), "Join North Police")
        response = self.client.post(link, {"username": "newcomer", "password": PASSWORD, "password_again": PASSWORD})
        self.assertRedirects(response, reverse("accounts:enrol"))
        user = User.objects.get(username="newcomer")
        self.assertEqual((user.agency, user.role, user.email), (self.north, "officer", "newcomer@north.example"))
        self.assertEqual(seats_used(self.north), 4)  # the user now holds the invitation's seat
        self.assertTrue(AuditEntry.objects.filter(action="invitation_accepted", actor=user).exists())

    def test_a_used_link_is_refused(self):
        self.invite()
        link = self.link()
        self.client.post(link, {"username": "newcomer", "password": PASSWORD, "password_again": PASSWORD})
        self.client.logout()
        response = self.client.get(link)
        self.assertContains(response, "already used", status_code=410)

    def test_a_link_expires_after_seventy_two_hours(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            self.invite()
        link = self.link()
        with time_machine.travel(start + timedelta(hours=71), tick=False):
            self.assertEqual(self.client.get(link).status_code, 200)
        with time_machine.travel(start + timedelta(hours=72, minutes=1), tick=False):
            response = self.client.post(link, {"username": "late", "password": PASSWORD, "password_again": PASSWORD})
            self.assertContains(response, "This invitation expired", status_code=410)
            self.assertFalse(User.objects.filter(username="late").exists())
            self.assertEqual(seats_used(self.north), 3)  # an expired invitation holds no seat

    def test_inviting_beyond_the_quota_is_refused_and_creates_nothing(self):
        agency_set_seats(agency=self.north, seats=3)
        response = self.invite()
        self.assertContains(response, "no free seat", status_code=400)
        self.assertEqual(Invitation.objects.count(), 0)
        self.assertEqual(len(mail.outbox), 0)

    def test_a_weak_password_shows_the_reason_and_keeps_the_invitation(self):
        self.invite()
        link = self.link()
        response = self.client.post(link, {"username": "newcomer", "password": "short", "password_again": "short"})
        self.assertContains(response, "at least 12 characters", status_code=400)
        self.assertFalse(User.objects.filter(username="newcomer").exists())
        self.assertEqual(self.client.get(link).status_code, 200)

    def test_a_withdrawn_invitation_frees_its_seat(self):
        invitation, token = invitation_create(actor=self.erin, email="x@north.example", role="officer")
        sign_in(self.client, self.erin)
        self.client.post(reverse("accounts:invitation-revoke", args=[invitation.code]))
        self.assertEqual(seats_used(self.north), 3)
        self.client.logout()
        self.assertContains(
            self.client.get(reverse("accounts:invitation-accept", args=[token])), "withdrawn", status_code=410
        )

    def test_only_agency_admins_invite(self):
        with self.assertRaisesMessage(AccountError, "Only an agency admin invites users."):
            invitation_create(actor=self.bob, email="x@north.example", role="officer")
