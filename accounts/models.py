import uuid

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import Q


class Agency(models.Model):
    """A law-enforcement agency: it owns its cases, probes and galleries, and buys seats."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    seats = models.PositiveIntegerField(default=0, help_text="Seats bought")
    licence_until = models.DateField(
        null=True, blank=True, help_text="Last day its users may sign in; empty = no end date"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "agencies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgencyPolicy(models.Model):
    """How an agency's searches are governed, set by platform staff and shown to the agency's users.

    The defaults ask for nothing, so an agency without a policy row searches as before
    (accounts.selectors.agency_policy answers them for an agency that has none).
    """

    agency = models.OneToOneField(Agency, on_delete=models.CASCADE, related_name="policy")
    authorisation_required = models.BooleanField(
        default=False, help_text="Searches need an authorisation per case (requested within the urgent window)"
    )
    urgent_window_hours = models.PositiveIntegerField(
        default=48, help_text="Hours a case may search, from its first search, before its authorisation is answered"
    )
    certification_required = models.BooleanField(
        default=False, help_text="Only users with a current face-search certification may search"
    )
    watchlist_max_entries = models.PositiveIntegerField(
        default=100, help_text="Watch-list entries the agency may have approved at one time"
    )
    watchlist_max_days = models.PositiveIntegerField(
        default=365, help_text="Longest life of a watch-list entry, in days (at most 365)"
    )
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.ForeignKey("User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name_plural = "agency policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(watchlist_max_days__gte=1, watchlist_max_days__lte=365), name="policy_watchlist_days_range"
            ),
            models.CheckConstraint(condition=Q(urgent_window_hours__gte=1), name="policy_urgent_window_positive"),
        ]

    def __str__(self) -> str:
        return f"Policy of {self.agency}"


class Role(models.TextChoices):
    OFFICER = "officer", "Officer"
    SUPERVISOR = "supervisor", "Supervisor"
    AGENCY_ADMIN = "agency_admin", "Agency admin"
    PLATFORM_STAFF = "platform_staff", "Platform staff"
    PRIVACY_OFFICER = "privacy_officer", "Privacy officer"


AGENCY_ROLES = (Role.OFFICER, Role.SUPERVISOR, Role.AGENCY_ADMIN)
PLATFORM_ROLES = (Role.PLATFORM_STAFF, Role.PRIVACY_OFFICER)


class PortalUserManager(UserManager):
    def create_superuser(self, username, email=None, password=None, **extra_fields):
        # `createsuperuser` is the only way to make one: a platform account of the deployment's operator.
        extra_fields.setdefault("role", Role.PLATFORM_STAFF)
        extra_fields["agency"] = None
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    """An agency user (officer, supervisor, agency admin) or a platform user (no agency)."""

    objects = PortalUserManager()

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey(Agency, null=True, blank=True, on_delete=models.PROTECT, related_name="users")
    role = models.CharField(max_length=20, choices=Role.choices)
    # Raised to end every session of the user at once ("sign out everywhere", deactivation).
    session_generation = models.PositiveIntegerField(default=0)
    # Face-search training, set by the agency admin: where the agency's policy asks for it, nobody searches
    # without a certification that is current today (search/lawful_use.py).
    search_trained_on = models.DateField(null=True, blank=True, help_text="Date of the face-search training")
    search_certified_until = models.DateField(
        null=True, blank=True, help_text="Last day the face-search certification is valid"
    )

    class Meta:
        constraints = [
            # Agency roles belong to an agency; platform roles to none.
            models.CheckConstraint(
                condition=(
                    Q(agency__isnull=False, role__in=[r.value for r in AGENCY_ROLES])
                    | Q(agency__isnull=True, role__in=[r.value for r in PLATFORM_ROLES])
                ),
                name="user_role_matches_agency",
            ),
        ]

    @property
    def is_agency_user(self) -> bool:
        return self.agency_id is not None


class Invitation(models.Model):
    """A single-use link by which an agency admin brings a new user in; it holds a seat while pending."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=[(r.value, r.label) for r in AGENCY_ROLES])
    token_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the link's token")
    invited_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def is_pending(self, now) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


class ApiToken(models.Model):
    """A user's token for the REST API (accounts/tokens.py): only a short public prefix and the SHA-256 of the
    secret are kept; the token itself is shown once, when it is made."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part of the token, for lookup")
    secret_hash = models.CharField(max_length=64, help_text="SHA-256 of the token's secret")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def is_live(self, now) -> bool:
        return self.revoked_at is None and self.expires_at > now
