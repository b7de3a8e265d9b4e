"""What the commands that fill a gallery share (enroll_gallery, import_nist): the gallery's options, the
gallery and enroller they name, and the threshold recalibrated at the end."""

from __future__ import annotations

from django.core.management.base import CommandError

from accounts.models import User
from accounts.selectors import agency_get_by_slug
from search.calibration import calibrations_refresh, search_thresholds
from search.enrolment import EnrolmentSkipped, gallery_get_or_create
from search.models import Gallery


def gallery_arguments_add(parser) -> None:
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


def enroller_get(*, agency: str, username: str | None) -> tuple:
    """The agency the command names and the user recorded as the enroller (None: the command itself)."""
    owner = agency_get_by_slug(agency)
    if owner is None:
        raise CommandError(f"No agency with the slug {agency!r}.")
    enrolled_by = None
    if username:
        enrolled_by = User.objects.filter(username=username, agency=owner).first()
        if enrolled_by is None:
            raise CommandError(f"No user {username!r} in {owner.name}.")
    return owner, enrolled_by


def gallery_for_command(*, owner, name: str, legal_basis: str, options: dict) -> tuple[Gallery, bool]:
    try:
        return gallery_get_or_create(
            owner=owner,
            name=name,
            legal_basis=legal_basis,
            legal_basis_reference=options["legal_reference"],
            source_type=options["source_type"] or "",
            responsible_person=options["responsible"],
            retention_days=options["retention_days"],
            source_description=options["source"],
        )
    except EnrolmentSkipped as exc:
        raise CommandError(str(exc)) from None


def threshold_recalibrated(gallery: Gallery) -> dict | None:
    """The galleries changed: recalibrate now rather than at the beat's next round, so that the very next search
    is decided on this gallery's own impostor pairs too; the gallery engine's new threshold."""
    calibrations_refresh()
    threshold = search_thresholds(agency_id=gallery.owner_id).get(gallery.engine)
    if threshold is None:
        return None
    return {
        "engine": threshold.engine,
        "distance": threshold.distance,
        "gallery_faces": threshold.gallery_faces,
        "version": threshold.version,
    }
