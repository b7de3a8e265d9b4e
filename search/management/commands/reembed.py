import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.faces import EngineNotAvailable
from search.models import Gallery
from search.reembed import galleries_pending, galleries_reembed, gallery_reembed, pending_faces


class Command(BaseCommand):
    help = (
        "Re-compute a gallery's descriptors with another engine (resumable), then switch the gallery to it "
        "in one transaction; until then it is searched with its old engine. --all does so for every gallery "
        "not yet on the engine, one after the other."
    )

    def add_arguments(self, parser):
        # Checked in handle, so that the message is a CommandError (argparse's own exits with status 2).
        parser.add_argument("--gallery", help="Name of the gallery to move")
        parser.add_argument("--all", action="store_true", help="Move every gallery of the deployment")
        parser.add_argument("--engine", required=True)
        parser.add_argument("--agency", help="Slug of the owning agency, when gallery names repeat")

    def handle(self, *args, gallery, engine, agency, **options):
        if bool(gallery) == bool(options["all"]):
            raise CommandError("Name one gallery with --gallery NAME, or move every gallery with --all (not both).")
        if options["all"]:
            if agency:
                raise CommandError(
                    "--agency names the owner of a --gallery; --all moves the galleries of every agency."
                )
            return self.handle_all(engine)
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
        self.write_counts(target.name, summary)
        if not summary.switched:
            raise CommandError(
                f"{target.name} keeps its engine {target.engine}: not every photo has a {engine} descriptor."
            )
        self.stdout.write(f"{target.name} is now searched with {engine}.")

    def handle_all(self, engine):
        try:
            total = sum(pending_faces(g, engine).count() for g in galleries_pending(engine))
            with tqdm(total=total, unit="face", desc=f"Describing with {engine}", file=sys.stderr) as bar:
                summaries = galleries_reembed(engine_name=engine, progress=lambda face: bar.update(1))
        except EngineNotAvailable as exc:
            raise CommandError(str(exc)) from None
        for summary in summaries:
            # Gallery names repeat across agencies: the owner tells them apart.
            label = f"{summary.gallery.name} ({summary.gallery.owner.slug})"
            if summary.already_on_engine:
                self.stdout.write(f"{label} is already searched with {engine}.")
            else:
                self.write_counts(label, summary)
        kept = [s for s in summaries if not s.switched]
        switched = sum(s.switched and not s.already_on_engine for s in summaries)
        already = sum(s.already_on_engine for s in summaries)
        self.stdout.write(
            f"{len(summaries) - len(kept)} of {len(summaries)} galleries are searched with {engine}: "
            f"{switched} switched now, {already} before; {len(kept)} keep their old engine."
        )
        if kept:
            names = ", ".join(f"{s.gallery.name} ({s.gallery.owner.slug}, {s.gallery.engine})" for s in kept)
            raise CommandError(f"Not every photo has a {engine} descriptor; these keep their old engine: {names}.")

    def write_counts(self, label, summary):
        self.stdout.write(
            f"{label}: {summary.described} described now, {summary.already} before, "
            f"{len(summary.skipped)} without a face for {summary.engine}."
        )
        for skipped in summary.skipped:
            self.stdout.write(f"  skipped {skipped['file']}: {skipped['reason']}")
