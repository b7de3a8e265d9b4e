from django.db import migrations, models
from django.db.models import Q

RUNNING_STAGES = ["detecting", "searching", "rendering"]


def stage_from_status(apps, schema_editor):
    """Mend rows whose stage disagrees with their status before the constraint forbids it.

    The status is the truth (claims, sweeps and the results page read it); the stage is only the
    progress display. So a queued, done or failed job takes the stage of its name (e.g. a job handed back
    to the queue after an attempt reached "searching" shows "queued" again), and a running job outside
    the running stages takes "detecting", the stage a claim starts a run with.
    """
    SearchJob = apps.get_model("search", "SearchJob")
    for status in ("queued", "done", "failed"):
        SearchJob.objects.filter(status=status).exclude(stage=status).update(stage=status)
    SearchJob.objects.filter(status="running").exclude(stage__in=RUNNING_STAGES).update(stage="detecting")


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0013_searchjob_published_at"),
    ]

    operations = [
        # Backwards there is nothing to undo: the mended stages agree with the statuses either way.
        migrations.RunPython(stage_from_status, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="searchjob",
            constraint=models.CheckConstraint(
                condition=Q(status="queued", stage="queued")
                | Q(status="running", stage__in=RUNNING_STAGES)
                | Q(status="done", stage="done")
                | Q(status="failed", stage="failed"),
                name="search_job_stage_matches_status",
            ),
        ),
    ]
