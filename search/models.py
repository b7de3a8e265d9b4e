import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import VectorField

DESCRIPTOR_DIMENSIONS = 128
# Graph settings of the HNSW indexes of the descriptor partitions (FaceDescriptor below; the migrations build
# them, search.index creates the same for bulk loads), chosen with `make bench-scale`: docs/benchmarks.md. The
# indexes' names, partitions and operator classes must agree with the engine registry (search.faces.ENGINES;
# tests/search/test_engines.py).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
# Each engine's partition of the descriptors is hashed on the gallery into this many partitions (docs/partitions.md).
DESCRIPTOR_HASH_MODULUS = 8


class OffenseCategory(models.Model):
    """The stated purpose of a search; a fixed list that platform staff maintain."""

    name = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    is_missing_person = models.BooleanField(default=False, help_text="Searches for a missing person")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "offense categories"

    def __str__(self) -> str:
        return self.name


class Gallery(models.Model):
    """An agency's own lawful records of faces, searched by that agency and those it shares with."""

    class SourceType(models.TextChoices):
        BOOKING = "booking", "Booking photos"
        WANTED = "wanted", "Wanted persons"
        MISSING = "missing", "Missing persons (with consent)"
        OTHER = "other", "Other lawful source"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey("accounts.Agency", on_delete=models.PROTECT, related_name="galleries")
    name = models.CharField(max_length=200)
    source_type = models.CharField(max_length=10, choices=SourceType.choices, default=SourceType.OTHER)
    legal_basis = models.TextField()
    legal_basis_reference = models.CharField(
        max_length=300, blank=True, help_text="The act, article or agreement the records rest on"
    )
    responsible_person = models.CharField(max_length=200, blank=True)
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Face images are purged this many days after enrolment"
    )
    legal_hold = models.BooleanField(default=False, help_text="Suspends the retention purge")
    source_description = models.TextField(blank=True)
    shared_with = models.ManyToManyField("accounts.Agency", blank=True, related_name="shared_galleries")
    engine = models.CharField(
        max_length=40, default="yunet-sface-int8", help_text="Engine the gallery is searched with"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "galleries"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="gallery_name_once_per_agency")]

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    """A person in a gallery: a record, never an identification by itself."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="profiles")
    display_name = models.CharField(max_length=200)
    aliases = models.JSONField(default=list, blank=True)
    date_of_birth = models.DateField(null=True, blank=True)
    record_reference = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_name"]
        constraints = [
            models.UniqueConstraint(fields=["gallery", "display_name"], name="profile_name_once_per_gallery")
        ]

    def __str__(self) -> str:
        return self.display_name


class FaceImage(models.Model):
    """One enrolled photo of a profile; its face's descriptor is a FaceDescriptor row."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="face_images")
    # Copied from the profile so that the rules on faces filter on one table.
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="face_images")
    image = models.FileField(upload_to="gallery/")
    crop = models.FileField(upload_to="crops/gallery/", blank=True)
    source_name = models.CharField(max_length=255, blank=True, help_text="File name or record reference")
    box = models.JSONField(help_text="[x, y, width, height] in the stored image")
    landmarks = models.JSONField(default=list)
    engine = models.CharField(max_length=40)
    quality = models.JSONField(default=dict)
    # Copied from the profile's date of birth at enrolment: minors are returned only to missing-person searches.
    minor_at_enrolment = models.BooleanField(default=False)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the photo as received")
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One descriptor per photo and engine: re-embedding adds the new engine's beside the old.
            models.UniqueConstraint(fields=["gallery", "content_hash", "engine"], name="face_image_once_per_engine"),
        ]

    def __str__(self) -> str:
        return self.source_name or str(self.code)


class FaceDescriptor(models.Model):
    """The descriptor of a face image, in a table of its own that the vector search reads alone.

    search_facedescriptor is partitioned by engine (list) and each engine's partition by a hash of the gallery
    (DESCRIPTOR_HASH_MODULUS), with the engine's HNSW index on each leaf; migration 0018 creates it in SQL, as
    Django cannot declare partitions (docs/partitions.md). Nothing references a descriptor; it references its face
    image ON DELETE CASCADE in the database, so every deletion of a face (erasure, retention, a refusal's erasure,
    a gallery deleted) removes its descriptor. Gallery, profile, engine and minor_at_enrolment are the face image's,
    copied so that the search filters on this table alone; none of them changes after enrolment.
    """

    # The database's key is (face_image_id, engine, gallery_id), as a partitioned table's key must hold the
    # partition keys; one face image has one engine and one gallery, so face_image_id alone is unique.
    face_image = models.OneToOneField(
        FaceImage, primary_key=True, on_delete=models.DO_NOTHING, related_name="descriptor"
    )
    gallery_id = models.BigIntegerField()
    profile_id = models.BigIntegerField()
    engine = models.CharField(max_length=40)
    minor_at_enrolment = models.BooleanField(default=False)
    embedding = VectorField(dimensions=DESCRIPTOR_DIMENSIONS)

    @classmethod
    def of(cls, face_image: FaceImage, embedding) -> "FaceDescriptor":
        """The (unsaved) descriptor row of a face image, its copied columns taken from it."""
        return cls(
            face_image=face_image,
            gallery_id=face_image.gallery_id,
            profile_id=face_image.profile_id,
            engine=face_image.engine,
            minor_at_enrolment=face_image.minor_at_enrolment,
            embedding=embedding,
        )

    def __str__(self) -> str:
        return f"Descriptor of face image {self.face_image_id} ({self.engine})"


class Probe(models.Model):
    """A photo of an unknown person uploaded into a case."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey("accounts.Agency", on_delete=models.PROTECT, related_name="probes")
    case = models.ForeignKey("portal.Case", on_delete=models.PROTECT, related_name="probes")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    image = models.FileField(upload_to="probes/", blank=True)
    purged_at = models.DateTimeField(null=True, blank=True, help_text="Image and crops deleted under retention")
    original_name = models.CharField(max_length=255, blank=True)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the photo as received")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    # Probe preparation (search/preparation.py): the original above stays untouched; the edits (ProbeEdit)
    # render a prepared copy, which is what the search reads. Empty: the original is searched.
    prepared_image = models.FileField(upload_to="probes/", blank=True)
    prepared_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the prepared copy")
    # Faces found on the image to be searched, for the officer to choose from; computed by a worker for
    # the image whose hash is preview_hash (a preview of an older image is never shown as current).
    preview_faces = models.JSONField(default=list, blank=True)
    preview_hash = models.CharField(max_length=64, blank=True)
    # The purpose, justification and detector chosen at upload, kept until the prepared probe is searched.
    pending_search = models.JSONField(default=dict, blank=True)
    # A still taken from a recorded video: the video's hash and the frame's time travel with the probe.
    video = models.ForeignKey("ProbeVideo", null=True, blank=True, on_delete=models.SET_NULL, related_name="probes")
    video_hash = models.CharField(max_length=64, blank=True)
    frame_time_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name or str(self.code)

    @property
    def searched_image(self):
        """The image a search reads and its boxes refer to: the prepared copy, or the original."""
        return self.prepared_image if self.prepared_image else self.image


class ProbeEdit(models.Model):
    """One recorded edit of a probe before its search: what, by whom, and the image's hash before and after."""

    class Operation(models.TextChoices):
        CROP = "crop", "Crop"
        ROTATE = "rotate", "Rotate"
        ADJUST = "adjust", "Brightness and contrast"
        RESET = "reset", "Back to the original"

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="edits")
    number = models.PositiveSmallIntegerField(help_text="1-based, in the order made")
    operation = models.CharField(max_length=10, choices=Operation.choices)
    parameters = models.JSONField(default=dict)
    made_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    hash_before = models.CharField(max_length=64)
    hash_after = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["probe", "number"]
        constraints = [models.UniqueConstraint(fields=["probe", "number"], name="probe_edit_number_once")]

    def __str__(self) -> str:
        return f"Edit {self.number} of probe {self.probe_id}: {self.operation}"


class ProbeVideo(models.Model):
    """A recorded video uploaded into a case to take stills from; only the stills are ever searched."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Finding stills"
        READY = "ready", "Stills ready"
        FAILED = "failed", "Not usable"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey("accounts.Agency", on_delete=models.PROTECT, related_name="probe_videos")
    case = models.ForeignKey("portal.Case", on_delete=models.PROTECT, related_name="videos")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file = models.FileField(upload_to="videos/", blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the video as received")
    size_bytes = models.PositiveBigIntegerField(default=0)
    container = models.CharField(max_length=10, blank=True, help_text="mp4 or webm, from the file's first bytes")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    # The proposed stills, sharpest first: [{"time_ms", "image", "sharpness", "faces"}]; "image" is a stored name.
    stills = models.JSONField(default=list, blank=True)
    offense_category = models.ForeignKey(OffenseCategory, null=True, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField(blank=True)
    sensitive = models.BooleanField(default=False)
    purged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name or str(self.code)


class ProbeFace(models.Model):
    """A face found in a probe."""

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="faces")
    index = models.PositiveSmallIntegerField(help_text="1-based, left to right")
    box = models.JSONField(help_text="[x, y, width, height] in the stored probe image")
    landmarks = models.JSONField(default=list)
    embedding = VectorField(dimensions=DESCRIPTOR_DIMENSIONS)
    engine = models.CharField(max_length=40)
    quality = models.JSONField(default=dict)
    # The open-set answer for this face (search.open_set): likely, none or low_quality; empty on faces
    # searched before decisions were recorded.
    decision = models.CharField(max_length=12, blank=True)
    crop = models.FileField(upload_to="crops/probes/", blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["probe", "index"], name="probe_face_index_once")]

    def __str__(self) -> str:
        return f"Face {self.index} of probe {self.probe_id}"


# The reason a search records when the detector finds no face (the page then offers the sensitive detector).
NO_FACE_FOUND = "No face found in the photo."


class SearchJob(models.Model):
    """One search of a probe against the galleries its agency may search."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Stage(models.TextChoices):
        QUEUED = "queued", "Queued"
        DETECTING = "detecting", "Detecting faces"
        SEARCHING = "searching", "Searching galleries"
        RENDERING = "rendering", "Rendering candidates"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey("accounts.Agency", on_delete=models.PROTECT, related_name="search_jobs")
    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="jobs")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="search_jobs_started"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.QUEUED)
    engine = models.CharField(max_length=40)
    threshold = models.FloatField()
    top_k = models.PositiveSmallIntegerField(default=10)
    sensitive = models.BooleanField(default=False, help_text="Slower detector for small or distant faces")
    offense_category = models.ForeignKey(OffenseCategory, null=True, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the job's message last reached the broker (a queued job; empty: not yet). A broker killed
    # outright can lose a message it acknowledged, so the sweeper publishes a queued job again once this
    # is SEARCH_REPUBLISH_SECONDS old.
    published_at = models.DateTimeField(null=True, blank=True)
    stage_ms = models.JSONField(default=dict, blank=True, help_text="Milliseconds per stage")
    # Per engine searched, the likely-candidate threshold used and the data behind it (open_set.Threshold).
    thresholds = models.JSONField(default=dict, blank=True)
    # Which faces of the photo are searched: {"mode": "all"} (commands, API), {"mode": "usable"} (the page's
    # default: every face of usable quality, all of them if none is), or {"mode": "chosen", "boxes": [...]}
    # from probe preparation; the run adds "found" and "searched" counts.
    face_choice = models.JSONField(default=dict, blank=True)
    # The authorisation the search ran under (search/lawful_use.py): a granted one, or a request inside its
    # urgent window; empty where the agency's policy asks for none.
    authorisation = models.ForeignKey(
        "CaseAuthorisation", null=True, blank=True, on_delete=models.PROTECT, related_name="search_jobs"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="search_job_sweep_idx")]
        # The stage refines the status for the progress display and never contradicts it (search/jobs.py
        # sets both in every transition).
        constraints = [
            models.CheckConstraint(
                condition=Q(status="queued", stage="queued")
                | Q(status="running", stage__in=["detecting", "searching", "rendering"])
                | Q(status="done", stage="done")
                | Q(status="failed", stage="failed"),
                name="search_job_stage_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return f"Search {self.code}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def found_no_face(self) -> bool:
        return self.status == self.Status.FAILED and self.error == NO_FACE_FOUND


class Candidate(models.Model):
    """A gallery face returned for a probe face: a lead to verify, never an identification."""

    job = models.ForeignKey(SearchJob, on_delete=models.CASCADE, related_name="candidates")
    probe_face = models.ForeignKey(ProbeFace, on_delete=models.CASCADE, related_name="candidates")
    # Empty once the person was erased at their request: the row stays as an "erased" marker.
    profile = models.ForeignKey(Profile, null=True, on_delete=models.SET_NULL, related_name="candidates")
    face_image = models.ForeignKey(FaceImage, null=True, on_delete=models.SET_NULL, related_name="candidates")
    erased_at = models.DateTimeField(null=True, blank=True)
    erased_reason = models.CharField(max_length=100, blank=True)
    engine = models.CharField(max_length=40, blank=True, help_text="Engine of the gallery face it was found with")
    distance = models.FloatField()
    rank = models.PositiveSmallIntegerField()
    # Presented as a likely candidate: under the search's calibrated threshold of its engine, the probe
    # face of usable quality (empty on candidates from before decisions were recorded).
    likely = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["probe_face__index", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["job", "probe_face", "face_image"], name="candidate_once_per_job_face")
        ]

    def __str__(self) -> str:
        return f"Candidate {self.rank} of face {self.probe_face_id} in job {self.job_id}"

    @property
    def found_with(self) -> str:
        """The engine whose distance this is (rows from before candidates recorded it: the job's)."""
        return self.engine or self.job.engine


class LeadReview(models.Model):
    """The people's verdict on a candidate: an officer proposes, a second person (a supervisor) confirms.

    A candidate becomes a confirmed lead only when a supervisor other than its proposer confirms it.
    Even then it is a lead, not an identification.
    """

    class Status(models.TextChoices):
        POSSIBLE_LEAD = "possible_lead", "Possible lead"
        EXCLUDED = "excluded", "Excluded"
        CONFIRMED = "confirmed", "Confirmed lead"
        REJECTED = "rejected", "Rejected by the reviewer"

    candidate = models.OneToOneField(Candidate, on_delete=models.CASCADE, related_name="review")
    status = models.CharField(max_length=20, choices=Status.choices)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField()
    proposal_note = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    # The lineup gate (search/lineup.py): a confirmed lead is cleared for identification procedures (a
    # lineup, an arrest request) only after independent evidence is recorded. Until then it is not.
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cleared_at = models.DateTimeField(null=True, blank=True)
    clearance_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            # Nobody confirms their own proposal, whatever path the write takes.
            models.CheckConstraint(
                condition=Q(reviewed_by__isnull=True) | ~Q(reviewed_by=models.F("proposed_by")),
                name="lead_reviewed_by_a_second_person",
            ),
            # Only a confirmed lead is ever cleared for identification procedures.
            models.CheckConstraint(
                condition=Q(cleared_at__isnull=True) | Q(status="confirmed"), name="lead_cleared_only_when_confirmed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()}: candidate {self.candidate_id}"


class IndependentEvidence(models.Model):
    """Evidence linking a confirmed lead to the case that is not the face search (what, by whom, when):
    without one, the lead cannot be cleared for a lineup or an arrest request."""

    class Kind(models.TextChoices):
        WITNESS = "witness", "Witness statement"
        DOCUMENT = "document", "Documents or records"
        FORENSIC = "forensic", "Forensic evidence (DNA, fingerprints)"
        DIGITAL = "digital", "Digital evidence (phone, location, transactions)"
        PHYSICAL = "physical", "Physical evidence"
        OTHER = "other", "Other investigative evidence"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    review = models.ForeignKey(LeadReview, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField(help_text="What the evidence is and what it shows")
    obtained_by = models.CharField(max_length=200, help_text="Who obtained it")
    obtained_on = models.DateField(help_text="When it was obtained")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["review", "recorded_at"]
        verbose_name_plural = "independent evidence"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for lead {self.review_id}"


class ComparisonRecord(models.Model):
    """One person's structured comparison of a probe face with a candidate, after the FISWG feature list
    (search/comparison.py). The second person records theirs blind: before they may see the first's."""

    class Role(models.TextChoices):
        PROPOSER = "proposer", "First examiner"
        VERIFIER = "verifier", "Verifier"

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="comparison_records")
    examiner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=10, choices=Role.choices)
    features = models.JSONField(default=dict, help_text="Feature → similar, different or not_visible")
    conclusion = models.CharField(max_length=20)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["candidate", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["candidate", "examiner"], name="comparison_once_per_examiner"),
            models.UniqueConstraint(fields=["candidate", "role"], name="comparison_once_per_role"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} comparison of candidate {self.candidate_id}"


class CaseAuthorisation(models.Model):
    """The authorisation a case's searches run under, where its agency's policy asks for one (EU AI Act
    art. 26(10)); search/lawful_use.py holds the rules.

    A row is a request (opened by the case's first search without a grant: searches may run until its urgent
    window ends), a grant (authority, reference, date, scope, expiry) or a refusal (which stops the case's
    searches and erases their data). The newest row of a case is its current state.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested (urgent use)"
        GRANTED = "granted", "Granted"
        REFUSED = "refused", "Refused"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey("accounts.Agency", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("portal.Case", on_delete=models.PROTECT, related_name="authorisations")
    status = models.CharField(max_length=10, choices=Status.choices)
    requested_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    window_ends_at = models.DateTimeField(null=True, blank=True, help_text="End of the urgent-use window")
    authority = models.CharField(max_length=200, blank=True, help_text="The judicial or administrative authority")
    reference = models.CharField(max_length=200, blank=True, help_text="The authority's reference for its decision")
    decided_on = models.DateField(null=True, blank=True, help_text="Date of the authority's decision")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="End of a grant; empty: no end")
    # A grant's scope; empty means every gallery the agency may search, every offense category.
    galleries = models.ManyToManyField(Gallery, blank=True, related_name="+")
    offense_categories = models.ManyToManyField(OffenseCategory, blank=True, related_name="+")
    refusal_reason = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="requested", window_ends_at__isnull=False)
                | Q(status="granted", decided_on__isnull=False)
                | Q(status="refused"),
                name="authorisation_fields_match_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()} authorisation of case {self.case_id}"

    @property
    def valid_through(self):
        """The last day a grant covers (it ends at the start of the next one), in the deployment's time zone."""
        if self.expires_at is None:
            return None
        return timezone.localtime(self.expires_at - timedelta(microseconds=1)).date()


class WatchlistEntry(models.Model):
    """A face of an unsolved case's probe kept to be compared with every new enrolment until it expires
    (search/watchlist.py): an officer proposes, a supervisor approves."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Waiting for approval"
        ACTIVE = "active", "On the watch-list"
        REJECTED = "rejected", "Not approved"
        ENDED = "ended", "Removed"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey("accounts.Agency", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("portal.Case", on_delete=models.PROTECT, related_name="watchlist_entries")
    job = models.ForeignKey(SearchJob, on_delete=models.CASCADE, related_name="watchlist_entries")
    probe_face = models.ForeignKey(ProbeFace, on_delete=models.CASCADE, related_name="watchlist_entries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    days = models.PositiveSmallIntegerField(help_text="Life asked for, in days from approval")
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField()
    proposal_note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-proposed_at"]
        verbose_name_plural = "watch-list entries"

    def __str__(self) -> str:
        return f"Watch-list entry {self.code}"


class WatchlistDescriptor(models.Model):
    """A watch-list entry's face described by one engine, with the alert threshold chosen for its life."""

    entry = models.ForeignKey(WatchlistEntry, on_delete=models.CASCADE, related_name="descriptors")
    engine = models.CharField(max_length=40)
    embedding = VectorField(dimensions=DESCRIPTOR_DIMENSIONS)
    threshold = models.FloatField(null=True, blank=True)
    threshold_data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "engine"], name="watchlist_descriptor_once_per_engine")]


class WatchlistAlert(models.Model):
    """A new enrolment closer to a watch-list face than its threshold: it opens as a candidate of the entry's
    search, compared and verified by two people like any other."""

    entry = models.ForeignKey(WatchlistEntry, on_delete=models.CASCADE, related_name="alerts")
    candidate = models.OneToOneField(Candidate, on_delete=models.CASCADE, related_name="watchlist_alert")
    face_image = models.ForeignKey(FaceImage, null=True, on_delete=models.SET_NULL, related_name="+")
    engine = models.CharField(max_length=40)
    distance = models.FloatField()
    threshold = models.FloatField()
    created_at = models.DateTimeField()
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class SubjectRequest(models.Model):
    """A person's request to learn what is held about them (GDPR art. 15) or to have it erased (art. 17)."""

    class Kind(models.TextChoices):
        ACCESS = "access", "Access"
        ERASURE = "erasure", "Erasure"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"

    reference = models.CharField(max_length=20, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    contact = models.EmailField()
    photo = models.FileField(upload_to="subject-requests/", blank=True)
    photo_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    created_at = models.DateTimeField()
    due_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    identity_verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    identity_note = models.TextField(blank=True)
    matches = models.JSONField(default=list, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    export = models.FileField(upload_to="subject-requests/", blank=True)
    outcome = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["due_at"]

    def __str__(self) -> str:
        return self.reference


class ThresholdCalibration(models.Model):
    """A fit of the impostor distances of one engine for one agency's searchable galleries (a version).

    Searches derive their likely-candidate threshold from the newest fit and the galleries' size at that
    moment (search.calibration); the beat makes a new version when the galleries change.
    """

    # Empty: the deployment's every gallery (data-subject requests and tombstones search them all).
    agency = models.ForeignKey("accounts.Agency", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    engine = models.CharField(max_length=40)
    version = models.PositiveIntegerField()
    fit = models.JSONField(help_text="The tail model (search.open_set.TailFit)")
    labelled_pairs = models.PositiveIntegerField()
    gallery_pairs = models.PositiveIntegerField()
    gallery_faces = models.PositiveIntegerField()
    gallery_signature = models.CharField(max_length=2000)
    # Pairs of different profiles closer than a likely match: possibly one person recorded twice.
    possible_duplicates = models.JSONField(default=list, blank=True)
    fit_check = models.JSONField(default=dict, blank=True)
    settings_used = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agency", "engine", "version"], name="calibration_version_once", nulls_distinct=False
            ),
        ]

    def __str__(self) -> str:
        return f"Calibration {self.engine} v{self.version}"


class Tombstone(models.Model):
    """The descriptor of a face erased at its owner's request: a later enrolment of that face is refused."""

    engine = models.CharField(max_length=40)
    embedding = VectorField(dimensions=DESCRIPTOR_DIMENSIONS)
    request = models.ForeignKey(SubjectRequest, null=True, on_delete=models.SET_NULL, related_name="tombstones")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Tombstone {self.pk} ({self.engine})"
