from typing import Any

from django.db import migrations, models
from django.db.models import Min, OuterRef, Subquery


def backfill(apps: Any, schema_editor: Any) -> None:
    """Recordings still taking batches get the minimum first timestamp of their batches."""
    Recording = apps.get_model("recordings", "Recording")
    RecordingBatch = apps.get_model("recordings", "RecordingBatch")
    first = (
        RecordingBatch.objects.filter(recording=OuterRef("pk"))
        .values("recording")
        .annotate(first=Min("first_timestamp"))
        .values("first")
    )
    Recording.objects.filter(status="recording").update(first_timestamp=Subquery(first[:1]))


class Migration(migrations.Migration):
    dependencies = [
        ("recordings", "0003_cdp_lease"),
    ]

    operations = [
        migrations.AddField(
            model_name="recording",
            name="first_timestamp",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
