from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0007_run_browser_options"),
    ]

    operations = [
        migrations.AlterField(
            model_name="artifact",
            name="kind",
            field=models.CharField(
                choices=[
                    ("screenshot", "Screenshot"),
                    ("download", "Download"),
                    ("recording", "Recording"),
                    ("report", "Report"),
                    ("export", "Export"),
                    ("upload", "Upload"),
                ],
                max_length=20,
            ),
        ),
    ]
