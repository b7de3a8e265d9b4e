from datetime import date

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import agency_get_by_slug
from accounts.services import AccountError, agency_set_seats


class Command(BaseCommand):
    help = "Set an agency's seats bought, and optionally its licence end date: set_seats SLUG N [--until DATE]"

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("seats", type=int)
        parser.add_argument("--until", help="Licence end date, YYYY-MM-DD (its users cannot sign in after it)")
        parser.add_argument("--no-end", action="store_true", help="Remove the licence end date")

    def handle(self, *args, slug, seats, until, no_end, **options):
        agency = agency_get_by_slug(slug)
        if agency is None:
            raise CommandError(f"No agency with the slug {slug!r}.")
        try:
            licence_until = date.fromisoformat(until) if until else None
        except ValueError:
            raise CommandError(f"--until must be a date like 2027-12-31, not {until!r}.") from None
        try:
            agency = agency_set_seats(agency=agency, seats=seats, licence_until=licence_until, clear_licence=no_end)
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        end = f", licence until {agency.licence_until:%Y-%m-%d}" if agency.licence_until else ", no licence end date"
        self.stdout.write(f"{agency.name}: {agency.seats} seats{end}.")
