import json
import os
import sys
import time
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.enrolment import EnrolmentItem, gallery_enrol_batch
from search.management.gallery_commands import (
    enroller_get,
    gallery_arguments_add,
    gallery_for_command,
    threshold_recalibrated,
)


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


class FacesRate:
    """The progress bar's step after each stored photo, with the faces enrolled so far and their rate."""

    def __init__(self, bar):
        self.bar, self.faces, self.started = bar, 0, time.monotonic()

    def __call__(self, item: EnrolmentItem) -> None:
        self.faces += item.outcome == "enrolled"
        elapsed = time.monotonic() - self.started
        rate = self.faces / elapsed if elapsed > 0 else 0.0
        self.bar.set_postfix_str(f"{self.faces} faces, {rate:.1f} faces/s", refresh=False)
        self.bar.update(1)


class Command(BaseCommand):
    help = (
        "Enrol a folder into a gallery: one sub-folder per person (folder name = profile name) "
        "holding that person's photos and an optional profile.json."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
        gallery_arguments_add(parser)
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
        owner, enrolled_by = enroller_get(agency=agency, username=options["user"])
        items = collect_items(folder)
        if not items:
            raise CommandError(f"{directory} holds no person folder with photos.")
        gallery_obj, created = gallery_for_command(owner=owner, name=gallery, legal_basis=legal_basis, options=options)
        with tqdm(total=len(items), unit="photo", desc="Enrolling", file=sys.stderr) as bar:
            summary = gallery_enrol_batch(
                gallery=gallery_obj,
                gallery_created=created,
                items=items,
                enrolled_by=enrolled_by,
                workers=max(1, options["workers"]),
                progress=FacesRate(bar),
            )
        result = summary.as_dict() | summary.timings_as_dict()
        threshold = threshold_recalibrated(gallery_obj)
        if threshold is not None:
            result["threshold"] = threshold
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=None))
            return
        self.stdout.write(
            f"Gallery {gallery_obj.name!r} ({'created' if created else 'existing'}): "
            f"{result['profiles']} profiles, {result['faces_enrolled']} faces enrolled, "
            f"{result['files_skipped']} files skipped, in {result['seconds']:.1f} s "
            f"({result['faces_per_second'] or 0:.1f} faces/s)."
        )
        if threshold is not None:
            self.stdout.write(
                f"Likely-candidate threshold of {gallery_obj.owner.name}'s searches: {threshold['distance']:.3f} "
                f"({threshold['engine']}, {threshold['gallery_faces']} faces searchable, "
                f"calibration v{threshold['version']})."
            )
        for code, count in sorted(result["skip_reasons"].items()):
            self.stdout.write(f"  {count:>4} skipped: {code.replace('_', ' ')}")
        for note in result["notes"]:
            self.stdout.write(f"  note    {os.path.relpath(note['file'], folder)}: {note['note']}")
        for skipped in result["skipped"]:
            self.stdout.write(f"  skipped {os.path.relpath(skipped['file'], folder)}: {skipped['reason']}")
