"""The upstream account's API token, kept encrypted (runs.sealed) instead of as given:
each stored token is sealed, then the plain column goes."""

from typing import Any

from django.db import migrations, models

from runs.sealed import InvalidToken, seal, unseal


def seal_tokens(apps: Any, schema_editor: Any) -> None:
    accounts = apps.get_model("recordings", "UpstreamAccount")
    for account in accounts.objects.all():
        account.api_token_sealed = seal(account.api_token).decode()
        account.save(update_fields=["api_token_sealed"])


def open_tokens(apps: Any, schema_editor: Any) -> None:
    accounts = apps.get_model("recordings", "UpstreamAccount")
    for account in accounts.objects.all():
        try:
            account.api_token = str(unseal(account.api_token_sealed.encode()))
        except InvalidToken:
            account.api_token = ""
        account.save(update_fields=["api_token"])


class Migration(migrations.Migration):
    dependencies = [
        ("recordings", "0008_viewer_lease_moved"),
    ]

    operations = [
        migrations.AddField(
            model_name="upstreamaccount",
            name="api_token_sealed",
            field=models.TextField(default="", editable=False),
        ),
        migrations.RunPython(seal_tokens, open_tokens),
        # A default first, so that undoing this adds the plain column back to rows.
        migrations.AlterField(
            model_name="upstreamaccount",
            name="api_token",
            field=models.CharField(default="", editable=False, max_length=500),
        ),
        migrations.RemoveField(
            model_name="upstreamaccount",
            name="api_token",
        ),
    ]
