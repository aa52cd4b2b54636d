import functools

import django.db.models.deletion
from django.db import migrations, models

import runs.ids


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0008_runtime_upload_kind"),
    ]

    operations = [
        migrations.CreateModel(
            name="Profile",
            fields=[
                (
                    "id",
                    models.CharField(
                        default=functools.partial(runs.ids.new_id, *("prof",), **{}),
                        editable=False,
                        max_length=40,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                (
                    "state",
                    models.BinaryField(default=b"", help_text="Fernet token of the JSON state"),
                ),
                (
                    "size",
                    models.PositiveIntegerField(
                        default=0, help_text="Bytes of the state, encrypted"
                    ),
                ),
                ("domains", models.JSONField(blank=True, default=list)),
                ("cookie_count", models.PositiveIntegerField(default=0)),
                ("saved_at", models.DateTimeField(blank=True, null=True)),
                ("saved_by_run_id", models.CharField(blank=True, max_length=40)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "space",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="profiles",
                        to="runs.space",
                    ),
                ),
                (
                    "writer_run",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="runs.run",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "constraints": [
                    models.UniqueConstraint(fields=("space", "name"), name="profile_space_name")
                ],
            },
        ),
    ]
