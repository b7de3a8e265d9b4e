"""Seats: quota, deactivation, reactivation, role changes, the last agency admin, set_seats."""

import io
from datetime import date

from django.core.management import CommandError, call_command
from django.test import TestCase
from django.urls import reverse

from accounts.models import Role, User
from accounts.services import (
    AccountError,
    agency_set_seats,
    seats_used,
    user_change_role,
    user_create,
    user_deactivate,
    user_reactivate,
)
from portal.models import AuditEntry
from tests.base import PASSWORD, AgencyFixtureMixin, sign_in


class SeatRuleTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()  # North: alice, bob, erin = 3 of 5 seats

    def test_every_active_agency_user_takes_a_seat_and_platform_users_none(self):
        user_create(username="pat", password=PASSWORD, role=Role.PLATFORM_STAFF)
        self.assertEqual(seats_used(self.north), 3)

    def test_a_user_beyond_the_quota_is_refused_and_nothing_is_created(self):
        user_create(username="u4", password=PASSWORD, role=Role.OFFICER, agency=self.north)
        user_create(username="u5", password=PASSWORD, role=Role.OFFICER, agency=self.north)
        with self.assertRaisesMessage(AccountError, "no free seat (5 of 5 in use)"):
            user_create(username="u6", password=PASSWORD, role=Role.OFFICER, agency=self.north)
        self.assertFalse(User.objects.filter(username="u6").exists())

    def test_deactivation_frees_a_seat_and_reactivation_takes_one(self):
        agency_set_seats(agency=self.north, seats=3)
        user_deactivate(actor=self.erin, user=self.alice)
        self.assertEqual(seats_used(self.north), 2)
        user_create(username="newbie", password=PASSWORD, role=Role.OFFICER, agency=self.north)
        with self.assertRaisesMessage(AccountError, "no free seat"):
            user_reactivate(actor=self.erin, user=self.alice)
        self.alice.refresh_from_db()
        self.assertFalse(self.alice.is_active)
        self.assertTrue(
            AuditEntry.objects.filter(
                action="user_deactivated", target_type="accounts.user", target_id=str(self.alice.id), actor=self.erin
            ).exists()
        )

    def test_the_last_agency_admin_cannot_be_deactivated_or_demoted(self):
        with self.assertRaisesMessage(AccountError, "last agency admin cannot be deactivated"):
            user_deactivate(actor=self.erin, user=self.erin)
        with self.assertRaisesMessage(AccountError, "last agency admin cannot be demoted"):
            user_change_role(actor=self.erin, user=self.erin, role=Role.OFFICER)
        self.erin.refresh_from_db()
        self.assertEqual((self.erin.is_active, self.erin.role), (True, Role.AGENCY_ADMIN))
        user_change_role(actor=self.erin, user=self.bob, role=Role.AGENCY_ADMIN)
        user_change_role(actor=self.erin, user=self.erin, role=Role.SUPERVISOR)  # now allowed

    def test_only_an_admin_of_the_same_agency_changes_a_user(self):
        with self.assertRaisesMessage(AccountError, "Only an agency admin of the same agency"):
            user_deactivate(actor=self.dave, user=self.alice)
        with self.assertRaisesMessage(AccountError, "Only an agency admin of the same agency"):
            user_change_role(actor=self.bob, user=self.alice, role=Role.SUPERVISOR)

    def test_seats_cannot_drop_below_the_seats_in_use(self):
        with self.assertRaisesMessage(AccountError, "has 3 active users"):
            agency_set_seats(agency=self.north, seats=2)


class SeatPageTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_the_admin_sees_seats_users_and_their_activity(self):
        sign_in(self.client, self.erin)
        response = self.client.get(reverse("accounts:seats"))
        self.assertContains(response, "3 of 5 seats in use")
        for name in ("alice", "bob", "erin"):
            self.assertContains(response, name)
        self.assertNotContains(response, "charlie")

    def test_officers_and_supervisors_have_no_seat_page(self):
        sign_in(self.client, self.bob)
        self.assertEqual(self.client.get(reverse("accounts:seats")).status_code, 403)

    def test_deactivating_and_the_last_admin_rule_in_the_page(self):
        sign_in(self.client, self.erin)
        response = self.client.post(reverse("accounts:user-deactivate", args=[self.alice.code]), follow=True)
        self.assertContains(response, "alice is deactivated")
        response = self.client.post(
            reverse("accounts:user-role", args=[self.erin.code]), {"role": "officer"}, follow=True
        )
        self.assertContains(response, "The last agency admin cannot be demoted")


class SetSeatsCommandTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_it_sets_seats_and_the_licence_end(self):
        out = io.StringIO()
        call_command("set_seats", "north", "8", "--until", "2027-03-31", stdout=out)
        self.north.refresh_from_db()
        self.assertEqual((self.north.seats, self.north.licence_until), (8, date(2027, 3, 31)))
        self.assertIn("8 seats, licence until 2027-03-31", out.getvalue())

    def test_it_refuses_a_bad_date_and_too_few_seats(self):
        with self.assertRaisesMessage(CommandError, "must be a date"):
            call_command("set_seats", "north", "8", "--until", "next year")
        with self.assertRaisesMessage(CommandError, "has 3 active users"):
            call_command("set_seats", "north", "1")
        self.north.refresh_from_db()
        self.assertEqual(self.north.seats, 5)
