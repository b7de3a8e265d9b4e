import json

from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, agency_create


class Command(BaseCommand):
    help = "Create an agency: create_agency SLUG --name NAME --seats N"

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--seats", type=int, required=True)
        parser.add_argument("--json", action="store_true", help="Print the agency as JSON")

    def handle(self, *args, slug, name, seats, **options):
        try:
            agency = agency_create(slug=slug, name=name, seats=seats)
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(
                json.dumps({"slug": agency.slug, "id": agency.id, "name": agency.name, "seats": agency.seats})
            )
        else:
            self.stdout.write(f"Created agency {agency.slug} ({agency.name}) with {agency.seats} seats.")
