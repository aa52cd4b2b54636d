from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0009_profile"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="browser_secrets",
            field=models.BinaryField(blank=True, default=b""),
        ),
        migrations.AddField(
            model_name="run",
            name="network_bytes_in",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="run",
            name="network_bytes_out",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
