import functools

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import runs.ids


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("recordings", "0007_recording_video"),
        ("runs", "0011_handoffs_and_webhooks"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # The model moved here from recordings with its table: the state learns of it, the
    # database is left as it is (recordings 0008 forgets it there).
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ViewerLease",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                default=functools.partial(runs.ids.new_id, *("lse",), **{}),
                                editable=False,
                                max_length=40,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("replay", "Replay"),
                                    ("live", "Live"),
                                    ("activity", "Activity"),
                                    ("cdp", "Cdp"),
                                ],
                                max_length=20,
                            ),
                        ),
                        (
                            "control",
                            models.CharField(
                                choices=[("none", "None"), ("input", "Input")],
                                default="none",
                                max_length=10,
                            ),
                        ),
                        ("components", models.JSONField(blank=True, default=list)),
                        (
                            "secret_hash",
                            models.CharField(editable=False, max_length=64, unique=True),
                        ),
                        ("expires_at", models.DateTimeField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        ("first_used_at", models.DateTimeField(blank=True, null=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("use_count", models.PositiveIntegerField(default=0)),
                        (
                            "created_by_key",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="runs.apikey",
                            ),
                        ),
                        (
                            "created_by_user",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "recording",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="leases",
                                to="recordings.recording",
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="viewer_leases",
                                to="runs.run",
                            ),
                        ),
                        (
                            "space",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="viewer_leases",
                                to="runs.space",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "recordings_viewerlease",
                        "ordering": ["-id"],
                        "indexes": [
                            models.Index(fields=["space", "expires_at"], name="lease_space_expiry")
                        ],
                    },
                ),
            ]
        )
    ]
