import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.faces import EngineNotAvailable
from search.models import Gallery
from search.reembed import gallery_reembed, pending_faces


class Command(BaseCommand):
    help = (
        "Re-compute a gallery's descriptors with another engine (resumable), then switch the gallery to it "
        "in one transaction; until then it is searched with its old engine."
    )

    def add_arguments(self, parser):
        parser.add_argument("--gallery", required=True)
        parser.add_argument("--engine", required=True)
        parser.add_argument("--agency", help="Slug of the owning agency, when gallery names repeat")

    def handle(self, *args, gallery, engine, agency, **options):
        galleries = Gallery.objects.filter(name=gallery)
        if agency:
            galleries = galleries.filter(owner__slug=agency)
        if galleries.count() != 1:
            raise CommandError(f"{galleries.count()} galleries named {gallery!r}; name one with --agency.")
        target = galleries.get()
        try:
            total = pending_faces(target, engine).count() if target.engine != engine else 0
            with tqdm(total=total, unit="face", desc=f"Describing with {engine}", file=sys.stderr) as bar:
                summary = gallery_reembed(gallery=target, engine_name=engine, progress=lambda face: bar.update(1))
        except EngineNotAvailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{target.name}: {summary.described} described now, {summary.already} before, "
            f"{len(summary.skipped)} without a face for {engine}."
        )
        for skipped in summary.skipped:
            self.stdout.write(f"  skipped {skipped['file']}: {skipped['reason']}")
        if not summary.switched:
            raise CommandError(
                f"{target.name} keeps its engine {target.engine}: not every photo has a {engine} descriptor."
            )
        self.stdout.write(f"{target.name} is now searched with {engine}.")
