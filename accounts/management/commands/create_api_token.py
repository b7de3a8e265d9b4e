"""Make an API token for a user: `create_api_token USERNAME --name TEXT [--days N] --json` (shown once)."""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from accounts import tokens
from accounts.models import User


class Command(BaseCommand):
    help = "Make an API token for a user (printed once; stored only as a hash)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the token is for")
        parser.add_argument("--days", type=int, default=None, help="Days it lasts (default 90, at most 365)")
        parser.add_argument("--json", action="store_true", help='Print {"token", "token_id", "expires_at"}')

    def handle(self, *args, username, name, days, json: bool = False, **options):
        user = User.objects.filter(username=username).select_related("agency").first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        try:
            made = tokens.api_token_create(user=user, name=name, days=days)
        except tokens.TokenError as exc:
            raise CommandError(str(exc))
        body = {
            "token": made.token,
            "token_id": str(made.api_token.code),
            "expires_at": made.api_token.expires_at.isoformat(),
        }
        if json:
            self.stdout.write(_dumps(body))
        else:
            self.stdout.write(f"{made.token}\n(shown once; expires {body['expires_at']})")


def _dumps(body) -> str:
    return jsonlib.dumps(body)
