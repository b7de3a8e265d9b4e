import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from search.subject_requests import RequestRefused, subject_request_file


class Command(BaseCommand):
    help = "File a data-subject request as the public page does: subject_request access|erasure PHOTO --contact EMAIL"

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=["access", "erasure"])
        parser.add_argument("photo")
        parser.add_argument("--contact", required=True, help="E-mail address to answer to")
        parser.add_argument("--json", action="store_true", help='Print {"reference": ..., "due": ...}')

    def handle(self, *args, kind, photo, contact, **options):
        path = Path(photo)
        if not path.is_file():
            raise CommandError(f"{photo} is not a file.")
        try:
            request = subject_request_file(kind=kind, data=path.read_bytes(), contact=contact)
        except RequestRefused as exc:
            raise CommandError(str(exc)) from None
        due = request.due_at.date().isoformat()
        if options["json"]:
            self.stdout.write(json.dumps({"reference": request.reference, "due": due}))
        else:
            self.stdout.write(f"Request {request.reference} filed ({kind}); answer due by {due}.")
