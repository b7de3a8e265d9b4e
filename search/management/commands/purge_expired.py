from django.core.management.base import BaseCommand

from search.retention import purge_expired


class Command(BaseCommand):
    help = "Delete what has expired: probe photos after their case's closure, gallery faces after their retention."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only print what would be removed")

    def handle(self, *args, dry_run, **options):
        plan = purge_expired(dry_run=dry_run)
        verb = "Would remove" if dry_run else "Removed"
        self.stdout.write(f"{verb} {len(plan.probes)} probe photos and {len(plan.face_images)} gallery faces.")
        for probe in plan.probes:
            self.stdout.write(
                f"  probe {probe.code} of case {probe.case.number} (closed {probe.case.closed_at:%Y-%m-%d})"
            )
        if plan.videos:
            self.stdout.write(f"{verb} {len(plan.videos)} videos with their stills.")
        for video in plan.videos:
            self.stdout.write(
                f"  video {video.code} of case {video.case.number} (closed {video.case.closed_at:%Y-%m-%d})"
            )
        for face in plan.face_images:
            self.stdout.write(
                f"  face {face.code} of {face.profile.display_name} in {face.gallery.name} "
                f"(enrolled {face.created_at:%Y-%m-%d}, retention {face.gallery.retention_days} days)"
            )
