import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import AccountError, user_certification_set


class Command(BaseCommand):
    help = "Record a user's face-search training date and the last day its certification is valid (or --clear)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--trained-on", type=date.fromisoformat, metavar="YYYY-MM-DD")
        parser.add_argument("--valid-until", type=date.fromisoformat, metavar="YYYY-MM-DD")
        parser.add_argument("--clear", action="store_true", help="Remove the user's certification")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, username, trained_on, valid_until, clear, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if clear and (trained_on or valid_until):
            raise CommandError("Give --clear alone, or --trained-on with --valid-until.")
        if not clear and not (trained_on and valid_until):
            raise CommandError("Give --trained-on and --valid-until (YYYY-MM-DD), or --clear.")
        try:
            user = user_certification_set(actor=None, user=user, trained_on=trained_on, certified_until=valid_until)
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        result = {
            "username": user.username,
            "trained_on": user.search_trained_on.isoformat() if user.search_trained_on else None,
            "valid_until": user.search_certified_until.isoformat() if user.search_certified_until else None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"{user.username}: trained {result['trained_on']}, valid until {result['valid_until']}.")
