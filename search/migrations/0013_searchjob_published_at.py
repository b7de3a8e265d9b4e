from django.db import migrations, models
from django.db.models import F


def queued_heartbeat_to_published_at(apps, schema_editor):
    """A queued job's heartbeat_at was when its message reached the broker: it becomes published_at."""
    SearchJob = apps.get_model("search", "SearchJob")
    SearchJob.objects.filter(status="queued").update(published_at=F("heartbeat_at"), heartbeat_at=None)


def queued_published_at_to_heartbeat(apps, schema_editor):
    SearchJob = apps.get_model("search", "SearchJob")
    SearchJob.objects.filter(status="queued").update(heartbeat_at=F("published_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0012_hnsw_ef_construction_128"),
    ]

    operations = [
        migrations.AddField(
            model_name="searchjob",
            name="published_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(queued_heartbeat_to_published_at, queued_published_at_to_heartbeat),
    ]
