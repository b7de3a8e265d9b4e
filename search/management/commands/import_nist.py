import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import User
from accounts.selectors import agency_get_by_slug
from search.calibration import calibrations_refresh, search_thresholds
from search.enrolment import EnrolmentSkipped, gallery_get_or_create, nist_files_import
from search.enrolment.nist import NIST_MAX_BYTES


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
        parser.add_argument("--agency", required=True, help="Slug of the agency that owns the gallery")
        parser.add_argument("--gallery", required=True, help="Gallery name (created if missing)")
        parser.add_argument("--legal-basis", required=True, help="Legal basis of the records")
        parser.add_argument("--legal-reference", default="", help="The act, article or agreement")
        parser.add_argument(
            "--source-type",
            choices=["booking", "wanted", "missing", "other"],
            help="Kind of records (required for a new gallery)",
        )
        parser.add_argument("--responsible", default="", help="Person responsible (required for a new gallery)")
        parser.add_argument("--retention-days", type=int, help="Retention period (required for a new gallery)")
        parser.add_argument("--source", default="", help="Where the records come from")
        parser.add_argument("--user", help="Username recorded as the enroller")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, files, agency, gallery, legal_basis, **options):
        owner = agency_get_by_slug(agency)
        if owner is None:
            raise CommandError(f"No agency with the slug {agency!r}.")
        enrolled_by = None
        if options["user"]:
            enrolled_by = User.objects.filter(username=options["user"], agency=owner).first()
            if enrolled_by is None:
                raise CommandError(f"No user {options['user']!r} in {owner.name}.")
        try:
            gallery_obj, created = gallery_get_or_create(
                owner=owner,
                name=gallery,
                legal_basis=legal_basis,
                legal_basis_reference=options["legal_reference"],
                source_type=options["source_type"] or "",
                responsible_person=options["responsible"],
                retention_days=options["retention_days"],
                source_description=options["source"],
            )
        except EnrolmentSkipped as exc:
            raise CommandError(str(exc)) from None
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
            # The galleries changed: recalibrate now, so the very next search is decided on this gallery too.
            calibrations_refresh()
            threshold = search_thresholds(agency_id=owner.id).get(gallery_obj.engine)
            if threshold is not None:
                result["threshold"] = {
                    "engine": threshold.engine,
                    "distance": threshold.distance,
                    "gallery_faces": threshold.gallery_faces,
                    "version": threshold.version,
                }
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
