import json
import os
import sys
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import User
from accounts.selectors import agency_get_by_slug
from search.calibration import calibrations_refresh, search_thresholds
from search.enrolment import EnrolmentItem, EnrolmentSkipped, gallery_enrol_batch, gallery_get_or_create


def _profile_fields(person_dir: Path) -> dict:
    """date_of_birth, aliases and record_reference from the folder's optional profile.json."""
    meta_file = person_dir / "profile.json"
    if not meta_file.exists():
        return {}
    try:
        meta = json.loads(meta_file.read_text())
        fields = {}
        if meta.get("date_of_birth"):
            fields["date_of_birth"] = date.fromisoformat(meta["date_of_birth"])
        if meta.get("aliases"):
            fields["aliases"] = [str(alias) for alias in meta["aliases"]]
        if meta.get("record_reference"):
            fields["record_reference"] = str(meta["record_reference"])
        return fields
    except (ValueError, TypeError, AttributeError) as exc:
        raise CommandError(f"{meta_file} is not valid: {exc}") from None


def collect_items(directory: Path) -> list[EnrolmentItem]:
    items = []
    for person_dir in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        fields = _profile_fields(person_dir)
        for photo in sorted(person_dir.iterdir()):
            if photo.is_file() and not photo.name.startswith(".") and photo.name != "profile.json":
                items.append(
                    EnrolmentItem(
                        path=str(photo),
                        display_name=person_dir.name,
                        profile_fields=fields,
                        source_name=str(photo.relative_to(directory)),
                    )
                )
    return items


class Command(BaseCommand):
    help = (
        "Enrol a folder into a gallery: one sub-folder per person (folder name = profile name) "
        "holding that person's photos and an optional profile.json."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
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
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.ENROL_WORKERS,
            help="Processes analysing photos (default: one per core)",
        )

    def handle(self, *args, directory, agency, gallery, legal_basis, **options):
        folder = Path(directory)
        if not folder.is_dir():
            raise CommandError(f"{directory} is not a folder.")
        owner = agency_get_by_slug(agency)
        if owner is None:
            raise CommandError(f"No agency with the slug {agency!r}.")
        enrolled_by = None
        if options["user"]:
            enrolled_by = User.objects.filter(username=options["user"], agency=owner).first()
            if enrolled_by is None:
                raise CommandError(f"No user {options['user']!r} in {owner.name}.")
        items = collect_items(folder)
        if not items:
            raise CommandError(f"{directory} holds no person folder with photos.")
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
        with tqdm(total=len(items), unit="photo", desc="Enrolling", file=sys.stderr) as bar:
            summary = gallery_enrol_batch(
                gallery=gallery_obj,
                gallery_created=created,
                items=items,
                enrolled_by=enrolled_by,
                workers=max(1, options["workers"]),
                progress=lambda item: bar.update(1),
            )
        result = summary.as_dict()
        # The galleries changed: recalibrate now rather than at the beat's next round, so that the very
        # next search is decided on this gallery's own impostor pairs too.
        calibrations_refresh()
        threshold = search_thresholds(agency_id=gallery_obj.owner_id).get(gallery_obj.engine)
        if threshold is not None:
            result["threshold"] = {
                "engine": threshold.engine,
                "distance": threshold.distance,
                "gallery_faces": threshold.gallery_faces,
                "version": threshold.version,
            }
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=None))
            return
        self.stdout.write(
            f"Gallery {gallery_obj.name!r} ({'created' if created else 'existing'}): "
            f"{result['profiles']} profiles, {result['faces_enrolled']} faces enrolled, "
            f"{result['files_skipped']} files skipped."
        )
        if threshold is not None:
            self.stdout.write(
                f"Likely-candidate threshold of {gallery_obj.owner.name}'s searches: {threshold.distance:.3f} "
                f"({threshold.engine}, {threshold.gallery_faces} faces searchable, calibration v{threshold.version})."
            )
        for code, count in sorted(result["skip_reasons"].items()):
            self.stdout.write(f"  {count:>4} skipped: {code.replace('_', ' ')}")
        for note in result["notes"]:
            self.stdout.write(f"  note    {os.path.relpath(note['file'], folder)}: {note['note']}")
        for skipped in result["skipped"]:
            self.stdout.write(f"  skipped {os.path.relpath(skipped['file'], folder)}: {skipped['reason']}")
