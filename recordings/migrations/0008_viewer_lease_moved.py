from django.db import migrations


class Migration(migrations.Migration):
    """ViewerLease moved to the viewers app with its table (recordings_viewerlease): only
    the migration state forgets it here; no row or column is touched."""

    dependencies = [
        ("recordings", "0007_recording_video"),
        ("viewers", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ViewerLease")],
        ),
    ]
