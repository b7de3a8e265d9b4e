import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.enrolment import nist_files_import
from search.enrolment.nist import NIST_MAX_BYTES
from search.management.gallery_commands import (
    enroller_get,
    gallery_arguments_add,
    gallery_for_command,
    threshold_recalibrated,
)


class Command(BaseCommand):
    help = (
        "Import ANSI/NIST-ITL booking records into a gallery: each file is one subject (profile keyed by its "
        "SID, 2.015, or else its TCN, 1.009), each Type-10 FACE record one photo of that subject. "
        "Exit codes: 0 when at least one face was imported (refused files are listed in the summary's "
        "'skipped'); 1 when nothing could be imported, or the agency, user or gallery is refused (the reason "
        "is printed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="ANSI/NIST-ITL files (.an2, .nist, .eft)")
        gallery_arguments_add(parser)

    def handle(self, *args, files, agency, gallery, legal_basis, **options):
        owner, enrolled_by = enroller_get(agency=agency, username=options["user"])
        gallery_obj, created = gallery_for_command(owner=owner, name=gallery, legal_basis=legal_basis, options=options)
        contents, unreadable = [], []
        for name in files:
            try:
                with open(name, "rb") as nist_file:
                    contents.append((name, nist_file.read(NIST_MAX_BYTES + 1)))
            except OSError as exc:
                unreadable.append(
                    {"file": name, "reason": f"The file could not be read: {exc.strerror}.", "code": "unreadable"}
                )
        with tqdm(total=len(contents), unit="file", desc="Importing", file=sys.stderr) as bar:
            summary = nist_files_import(
                gallery=gallery_obj,
                gallery_created=created,
                files=contents,
                enrolled_by=enrolled_by,
                progress=lambda name: bar.update(1),
            )
        summary.skipped[:0] = unreadable
        result = summary.as_dict()
        if summary.faces_enrolled:
            threshold = threshold_recalibrated(gallery_obj)
            if threshold is not None:
                result["threshold"] = threshold
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=None))
        else:
            self.stdout.write(
                f"Gallery {gallery_obj.name!r} ({'created' if created else 'existing'}): "
                f"{result['profiles']} profiles, {result['faces_enrolled']} faces imported, "
                f"{result['files_skipped']} files or records skipped."
            )
            for note in result["notes"]:
                self.stdout.write(f"  note    {note['file']}: {note['note']}")
            for skipped in result["skipped"]:
                self.stdout.write(f"  skipped {skipped['file']}: {skipped['reason']}")
        if not summary.faces_enrolled:
            reasons = "; ".join(f"{Path(s['file']).name}: {s['reason']}" for s in result["skipped"])
            raise CommandError(f"Nothing was imported. {reasons}")
