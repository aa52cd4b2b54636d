"""A new space lets any site embed its viewer links (`["*"]`, bctrl_site.origins).

Existing spaces keep what they have, `[]` included: on a deployment made before this, `[]`
meant that no site could frame an embed, nor open a live view's socket with a lease, and
its owners may have shared live links with control on that understanding. Widening that
to any site is theirs to choose (Space settings, or `PATCH /v1/spaces/{id}`), and the
Share tab says where their links open until they do.
"""

from django.db import migrations, models

import runs.models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0005_runtime_host"),
    ]

    operations = [
        migrations.AlterField(
            model_name="space",
            name="allowed_embed_origins",
            field=models.JSONField(
                blank=True,
                default=runs.models.any_embed_origin,
                help_text=(
                    'Sites that may frame viewer embeds and open their live view: ["*"] for '
                    "any site, [] for none, or origins such as https://app.example.com."
                ),
            ),
        ),
    ]
