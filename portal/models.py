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
