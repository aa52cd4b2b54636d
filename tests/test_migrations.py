"""Migrations that move a model between apps keep its rows: run from the old layout on a
populated database, then read through the new one."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from viewers.leases import _hash, _signer, lease_check
from viewers.models import ViewerLease

BEFORE_MOVE = [("runs", "0011_handoffs_and_webhooks"), ("recordings", "0007_recording_video")]


def migrate(targets: list[tuple[str, str | None]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    applied = [(app, name) for app, name in targets if name is not None]
    return executor.loader.project_state(applied).apps


@pytest.mark.django_db(transaction=True)
def test_a_lease_minted_before_the_viewers_app_still_opens_its_replay_after_it() -> None:
    old = migrate([*BEFORE_MOVE, ("viewers", None)])
    space = old.get_model("runs", "Space").objects.create(name="Acme", slug="acme")
    run = old.get_model("runs", "Run").objects.create(space=space)
    recording = old.get_model("recordings", "Recording").objects.create(
        run=run, space=space, status="ready"
    )
    secret = "s" * 43
    old.get_model("recordings", "ViewerLease").objects.create(
        id="lse_moved",
        space=space,
        run=run,
        recording=recording,
        kind="replay",
        secret_hash=_hash(secret),
        expires_at=timezone.now() + timedelta(hours=1),
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    lease = ViewerLease.objects.get(pk="lse_moved")
    assert (lease.run_id, lease.recording_id, lease.kind) == (run.pk, recording.pk, "replay")
    assert lease_check(_signer().sign(secret), kind="replay").pk == "lse_moved"


@pytest.mark.django_db(transaction=True)
def test_an_upstream_token_stored_as_given_is_sealed_and_still_opens() -> None:
    from recordings.models import UpstreamAccount

    old = migrate([("recordings", "0008_viewer_lease_moved")])
    space = old.get_model("runs", "Space").objects.create(name="Acme", slug="acme")
    token = "cf-token-" + "x" * 31
    old.get_model("recordings", "UpstreamAccount").objects.create(
        space=space, base_url="https://api.example.com/client/v4", account_id="acc", api_token=token
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    account = UpstreamAccount.objects.get()
    assert account.api_token == token
    assert token not in account.api_token_sealed and account.api_token_sealed.startswith("gAAAA")
    # And back: the plain column again, with the token.
    back = migrate([("recordings", "0008_viewer_lease_moved")])
    assert back.get_model("recordings", "UpstreamAccount").objects.get().api_token == token
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
