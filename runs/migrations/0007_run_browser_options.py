from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0006_space_embed_origins_any"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="browser_options",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
