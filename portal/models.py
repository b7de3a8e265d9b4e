import hashlib
import json
import uuid

from django.conf import settings
from django.db import models


class Case(models.Model):
    """An investigation of one agency; every search belongs to one."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey("accounts.Agency", on_delete=models.PROTECT, related_name="cases")
    number = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["agency", "number"], name="case_number_once_per_agency")]

    def __str__(self) -> str:
        return f"{self.number} — {self.title}"


class AuditEntry(models.Model):
    """One append-only, hash-chained record of an action: sign-ins, searches, views, decisions, changes.

    Never updated or deleted by the application (the model refuses, and so does a database trigger);
    each entry stores the SHA-256 of its canonical content and the previous entry's hash, so that an
    edited, deleted or reordered row breaks the chain that `manage.py verify_audit` walks.
    """

    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
        SECOND_FACTOR_FAILED = "second_factor_failed", "Second factor failed"
        LOCKED_OUT = "locked_out", "Locked out"
        UNLOCKED = "unlocked", "Unlocked"
        SIGN_OUT = "sign_out", "Signed out"
        SIGN_OUT_EVERYWHERE = "sign_out_everywhere", "Signed out everywhere"
        SESSION_EXPIRED = "session_expired", "Session expired"
        SECOND_FACTOR_ENROLLED = "second_factor_enrolled", "Second factor enrolled"
        RATE_LIMITED = "rate_limited", "Rate limited"
        PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
        PASSWORD_RESET = "password_reset", "Password reset"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        USER_CREATED = "user_created", "User created"
        USER_DEACTIVATED = "user_deactivated", "User deactivated"
        USER_REACTIVATED = "user_reactivated", "User reactivated"
        ROLE_CHANGED = "role_changed", "Role changed"
        SEATS_CHANGED = "seats_changed", "Seats changed"
        INVITATION_SENT = "invitation_sent", "Invitation sent"
        INVITATION_ACCEPTED = "invitation_accepted", "Invitation accepted"
        INVITATION_REVOKED = "invitation_revoked", "Invitation revoked"
        CASE_OPENED = "case_opened", "Case opened"
        CASE_CLOSED = "case_closed", "Case closed"
        CASE_REOPENED = "case_reopened", "Case reopened"
        SEARCH_STARTED = "search_started", "Search started"
        SEARCH_RESULTS = "search_results", "Search results returned"
        SEARCH_FAILED = "search_failed", "Search failed"
        RESULTS_VIEWED = "results_viewed", "Results viewed"
        COMPARISON_VIEWED = "comparison_viewed", "Comparison viewed"
        PROFILE_VIEWED = "profile_viewed", "Profile viewed"
        LEAD_PROPOSED = "lead_proposed", "Possible lead proposed"
        CANDIDATE_EXCLUDED = "candidate_excluded", "Candidate excluded"
        LEAD_CONFIRMED = "lead_confirmed", "Lead confirmed"
        LEAD_REJECTED = "lead_rejected", "Lead rejected"
        GALLERY_ENROLLED = "gallery_enrolled", "Photos enrolled into a gallery"
        GALLERY_REEMBEDDED = "gallery_reembedded", "Gallery switched to another engine"
        AUDIT_EXPORTED = "audit_exported", "Audit log exported"
        REPORT_REQUESTED = "report_requested", "Case report requested"
        REPORT_GENERATED = "report_generated", "Case report generated"
        REPORT_DOWNLOADED = "report_downloaded", "Case report downloaded"
        SUBJECT_REQUEST_ATTEMPTED = "subject_request_attempted", "Data-subject request page posted"
        SUBJECT_REQUEST_FILED = "subject_request_filed", "Data-subject request filed"
        SUBJECT_SEARCH = "subject_search", "Data-subject request searched"
        SUBJECT_ACCESS_RELEASED = "subject_access_released", "Data-subject access export released"
        SUBJECT_ERASED = "subject_erased", "Profiles erased at the person's request"
        TOMBSTONE_HIT = "tombstone_hit", "Enrolment of an erased face refused"
        RETENTION_PURGE = "retention_purge", "Expired data purged"
        THRESHOLD_CALIBRATED = "threshold_calibrated", "Likely-candidate threshold recalibrated"
        THRESHOLD_SETTING_CHANGED = "threshold_setting_changed", "Threshold setting changed"
        PROBE_UPLOADED = "probe_uploaded", "Probe uploaded for preparation"
        PROBE_EDITED = "probe_edited", "Probe photo edited"
        VIDEO_UPLOADED = "video_uploaded", "Video uploaded for stills"
        VIDEO_STILLS_FOUND = "video_stills_found", "Stills proposed from a video"
        VIDEO_REJECTED = "video_rejected", "Video not usable"
        VIDEO_VIEWED = "video_viewed", "Stills of a video viewed"
        COMPARISON_RECORDED = "comparison_recorded", "Comparison recorded"
        CANDIDATE_ERASED = "candidate_erased", "A candidate of a search was erased"
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
        POLICY_CHANGED = "policy_changed", "Agency policy changed"
        CERTIFICATION_CHANGED = "certification_changed", "Face-search certification changed"
        SEARCH_REFUSED = "search_refused", "Search refused by the agency's policy"
        AUTHORISATION_REQUESTED = "authorisation_requested", "Authorisation requested (urgent use)"
        AUTHORISATION_GRANTED = "authorisation_granted", "Authorisation granted"
        AUTHORISATION_REFUSED = "authorisation_refused", "Authorisation refused"
        CASE_SEARCH_DATA_ERASED = "case_search_data_erased", "Search data of a case erased"
        WATCHLIST_PROPOSED = "watchlist_proposed", "Watch-list entry proposed"
        WATCHLIST_APPROVED = "watchlist_approved", "Watch-list entry approved"
        WATCHLIST_REJECTED = "watchlist_rejected", "Watch-list entry not approved"
        WATCHLIST_ENDED = "watchlist_ended", "Watch-list entry removed"
        WATCHLIST_ALERT = "watchlist_alert", "Watch-list alert raised"
        EVIDENCE_RECORDED = "evidence_recorded", "Independent evidence recorded"
        LEAD_CLEARED = "lead_cleared", "Lead cleared for identification procedures"
        DISCLOSURE_PACKET = "disclosure_packet", "Disclosure packet produced"
        USAGE_REPORT = "usage_report", "Usage report produced"

    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    username = models.CharField(
        max_length=150,
        blank=True,
        db_index=True,
        help_text="The actor's username, or the name typed at a failed sign-in",
    )
    agency = models.ForeignKey("accounts.Agency", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    ip_address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_entries")
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["agency", "at"], name="audit_agency_at_idx")]

    def canonical_content(self) -> dict:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "action": self.action,
            "actor_id": self.actor_id,
            "username": self.username,
            "agency_id": self.agency_id,
            "ip_address": self.ip_address,
            "case_id": self.case_id,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "detail": self.detail,
            "data": self.data,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(self.canonical_content(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256((self.prev_hash + canonical).encode()).hexdigest()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries are never deleted.")


class CaseReport(models.Model):
    """A PDF report of a case, rendered by a worker and downloaded through a permission-checked view."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Being prepared"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="reports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    file = models.FileField(upload_to="reports/", blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
