"""The lease check itself: what a token opens, every way it is refused, key rotation,
use counting, what the token does not reveal, and revocation."""

import base64
import binascii
import json
import secrets
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core import signing
from django.utils import timezone

from recordings.models import Recording
from runs import services
from runs.errors import ApiError, Conflict
from runs.models import Run
from tests.conftest import Tenant
from viewers import leases
from viewers.leases import LeaseRefused, lease_check, lease_mint, lease_revoke
from viewers.models import ViewerLease

REPLAY = ViewerLease.Kind.REPLAY
LIVE = ViewerLease.Kind.LIVE


@pytest.fixture
def run(tenant: Tenant) -> Run:
    return services.run_create(space=tenant.space, name="checkout")


def ready_recording(run: Run, **fields: Any) -> Recording:
    return Recording.objects.create(
        space_id=run.space_id, run=run, status=Recording.Status.READY, duration_ms=5000, **fields
    )


def refusal(token: str, **ask: Any) -> LeaseRefused:
    with pytest.raises(LeaseRefused) as caught:
        lease_check(token, **ask)
    return caught.value


def secret_and_signature(token: str) -> tuple[str, str]:
    secret, _, signature = token.rpartition(":")
    return secret, signature


def one_char_changed(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


# Opening ---------------------------------------------------------------------------


def test_a_fresh_token_opens_its_kind(run: Run) -> None:
    replay = lease_mint(run=run, kind=REPLAY)
    live = lease_mint(run=run, kind=LIVE, control=ViewerLease.Control.INPUT)
    assert lease_check(replay.token, kind=REPLAY, run_id=run.id).pk == replay.lease.pk
    assert lease_check(live.token, kind=LIVE, control="input").pk == live.lease.pk
    assert lease_check(live.token, kind=LIVE, control="none").pk == live.lease.pk


def test_a_granted_component_opens(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY, components=["activity", "activity"])
    assert minted.lease.components == ["activity"]
    assert lease_check(minted.token, kind=REPLAY, component="activity").pk == minted.lease.pk


def test_a_live_lease_for_an_ended_run_is_a_conflict(run: Run) -> None:
    ended = services.run_stop(run=run, status="completed")
    with pytest.raises(Conflict) as caught:
        lease_mint(run=ended, kind=LIVE)
    assert caught.value.code == "run.ended"


@pytest.mark.parametrize("raw", [59, 86401, 0, -5, "3600", 3600.0, True])
def test_a_lifetime_out_of_bounds_or_not_an_integer_is_a_422(raw: Any) -> None:
    with pytest.raises(ApiError) as caught:
        leases.lifetime_seconds(raw)
    assert caught.value.status_code == 422
    assert caught.value.code == "lease.invalid_lifetime"


@pytest.mark.parametrize(("raw", "seconds"), [(None, 3600), (60, 60), (86400, 86400)])
def test_a_lifetime_within_bounds_is_kept(raw: Any, seconds: int) -> None:
    assert leases.lifetime_seconds(raw) == seconds


# Refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["secret", "signature"])
def test_it_refuses_a_tampered_token(run: Run, part: str) -> None:
    token = lease_mint(run=run, kind=REPLAY).token
    secret, signature = secret_and_signature(token)
    if part == "secret":
        tampered = f"{one_char_changed(secret, 5)}:{signature}"
    else:
        tampered = f"{secret}:{one_char_changed(signature, 5)}"
    refused = refusal(tampered, kind=REPLAY)
    assert (refused.reason, refused.status) == ("invalid", 403)


@pytest.mark.parametrize("token", ["", "garbage", ":", "a:b:c", "x" * 5000])
def test_it_refuses_malformed_tokens(db: None, token: str) -> None:
    assert refusal(token, kind=REPLAY).reason == "invalid"


def test_it_refuses_an_unknown_secret_with_a_valid_signature(run: Run) -> None:
    lease_mint(run=run, kind=REPLAY)
    forged = signing.Signer(salt=leases.SALT).sign(secrets.token_urlsafe(32))
    refused = refusal(forged, kind=REPLAY)
    assert (refused.reason, refused.status) == ("invalid", 403)


def test_it_refuses_an_expired_lease_with_a_410(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY, lifetime_s=60)
    later = timezone.now() + timedelta(seconds=61)
    with mock.patch("viewers.leases.timezone.now", return_value=later):
        refused = refusal(minted.token, kind=REPLAY)
    assert (refused.reason, refused.status) == ("expired", 410)
    assert "expired" in refused.message


def test_a_lease_still_opens_one_second_before_it_expires(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY, lifetime_s=60)
    just_before = minted.lease.expires_at - timedelta(seconds=1)
    with mock.patch("viewers.leases.timezone.now", return_value=just_before):
        assert lease_check(minted.token, kind=REPLAY).pk == minted.lease.pk


def test_it_refuses_a_revoked_lease(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY)
    lease_revoke(lease=minted.lease)
    refused = refusal(minted.token, kind=REPLAY)
    assert (refused.reason, refused.status) == ("revoked", 403)


def test_it_refuses_another_run(run: Run, tenant: Tenant) -> None:
    other = services.run_create(space=tenant.space)
    minted = lease_mint(run=run, kind=REPLAY)
    refused = refusal(minted.token, kind=REPLAY, run_id=other.id)
    assert (refused.reason, refused.status) == ("invalid", 403)


def test_it_refuses_a_replay_lease_asked_for_live(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY)
    refused = refusal(minted.token, kind=LIVE)
    assert (refused.reason, refused.status) == ("wrong_kind", 403)


def test_it_refuses_a_component_the_lease_was_not_granted(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY)
    refused = refusal(minted.token, kind=REPLAY, component="activity")
    assert (refused.reason, refused.status) == ("wrong_kind", 403)


def test_it_refuses_input_on_a_watch_only_lease(run: Run) -> None:
    minted = lease_mint(run=run, kind=LIVE, control=ViewerLease.Control.NONE)
    refused = refusal(minted.token, kind=LIVE, control="input")
    assert (refused.reason, refused.status) == ("control", 403)


@pytest.mark.parametrize("status", [Recording.Status.DELETED, Recording.Status.EXPIRED])
def test_it_refuses_a_recording_that_is_gone_with_a_410(run: Run, status: str) -> None:
    recording = ready_recording(run)
    minted = lease_mint(run=run, kind=REPLAY)
    assert minted.lease.recording_id == recording.id
    Recording.objects.filter(pk=recording.pk).update(status=status)
    refused = refusal(minted.token, kind=REPLAY)
    assert (refused.reason, refused.status) == ("unavailable", 410)


def test_it_refuses_the_lease_of_a_deleted_run(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY)
    run.delete()
    refused = refusal(minted.token, kind=REPLAY)
    assert (refused.reason, refused.status) == ("invalid", 403)


def test_refusal_messages_say_nothing_about_the_run_or_space(run: Run) -> None:
    for reason in LeaseRefused.MESSAGES:
        message = LeaseRefused(reason).message
        assert run.id not in message
        assert run.space_id not in message


# Key rotation ----------------------------------------------------------------------


def test_a_token_survives_a_key_rotation_while_the_old_key_is_a_fallback(
    run: Run, settings: Any
) -> None:
    settings.SECRET_KEY = "old-" + "k" * 60
    settings.SECRET_KEY_FALLBACKS = []
    minted = lease_mint(run=run, kind=REPLAY)

    settings.SECRET_KEY = "new-" + "n" * 60
    settings.SECRET_KEY_FALLBACKS = ["old-" + "k" * 60]
    assert lease_check(minted.token, kind=REPLAY).pk == minted.lease.pk

    settings.SECRET_KEY_FALLBACKS = []
    assert refusal(minted.token, kind=REPLAY).reason == "invalid"


def test_a_token_minted_after_the_rotation_opens_under_the_new_key(run: Run, settings: Any) -> None:
    settings.SECRET_KEY = "new-" + "n" * 60
    settings.SECRET_KEY_FALLBACKS = ["old-" + "k" * 60]
    minted = lease_mint(run=run, kind=REPLAY)
    settings.SECRET_KEY_FALLBACKS = []
    assert lease_check(minted.token, kind=REPLAY).pk == minted.lease.pk


# Use counting ----------------------------------------------------------------------


def test_each_check_counts_a_use(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY)
    lease = minted.lease
    assert (lease.use_count, lease.first_used_at, lease.last_used_at) == (0, None, None)

    first = timezone.now() + timedelta(seconds=5)
    with mock.patch("viewers.leases.timezone.now", return_value=first):
        lease_check(minted.token, kind=REPLAY)
    second = first + timedelta(seconds=30)
    with mock.patch("viewers.leases.timezone.now", return_value=second):
        lease_check(minted.token, kind=REPLAY)

    lease.refresh_from_db()
    assert lease.use_count == 2
    assert lease.first_used_at == first
    assert lease.last_used_at == second


def test_a_check_without_record_use_and_a_refused_check_count_nothing(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY)
    lease_check(minted.token, kind=REPLAY, record_use=False)
    refusal(minted.token, kind=LIVE)
    minted.lease.refresh_from_db()
    assert minted.lease.use_count == 0
    assert minted.lease.last_used_at is None


# What the token reveals ------------------------------------------------------------


def _decodes_to_json(part: str) -> bool:
    try:
        decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        json.loads(decoded)
    except (binascii.Error, ValueError):
        return False
    return True


def test_the_token_holds_no_id_and_nothing_parseable(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY, components=["activity"])
    token = minted.token
    for value in (minted.lease.id, run.id, run.space_id):
        assert value not in token
        assert value.split("_", 1)[1] not in token
    assert not _decodes_to_json(token)
    for part in token.split(":"):
        assert not _decodes_to_json(part)
    # Only the secret's hash is stored: the row alone cannot rebuild the URL.
    secret, _ = secret_and_signature(token)
    stored = ViewerLease.objects.get(pk=minted.lease.pk)
    assert secret not in stored.secret_hash
    assert stored.secret_hash == leases._hash(secret)


def test_two_leases_never_share_a_token(run: Run) -> None:
    tokens = {lease_mint(run=run, kind=REPLAY).token for _ in range(20)}
    assert len(tokens) == 20


# Revocation ------------------------------------------------------------------------


def test_revoking_notifies_the_runs_open_viewers(run: Run) -> None:
    minted = lease_mint(run=run, kind=REPLAY)
    with mock.patch("viewers.leases.notify_run_changed") as notify:
        lease_revoke(lease=minted.lease)
        lease_revoke(lease=minted.lease)  # a second revoke is a no-op
    notify.assert_called_once_with(run.id, "lease.revoked", leaseId=minted.lease.id)
    minted.lease.refresh_from_db()
    assert minted.lease.revoked_at is not None


@pytest.mark.django_db(transaction=True)
async def test_a_revocation_wakes_a_listener_of_the_run(tenant: Tenant) -> None:
    from asgiref.sync import sync_to_async

    from runs.live import run_change_listener

    run = await sync_to_async(services.run_create)(space=tenant.space)
    minted = await sync_to_async(lease_mint)(run=run, kind=REPLAY)
    async with run_change_listener(run.id) as listener:
        await sync_to_async(lease_revoke)(lease=minted.lease)
        assert await listener.wait(2.0) is True


@pytest.mark.django_db(transaction=True)
def test_uses_are_tallied_in_memory_and_written_by_the_flusher(
    tenant: Tenant, settings: Any
) -> None:
    import time

    settings.BCTRL_LEASE_USE_FLUSH_S = 0.05
    run = services.run_create(space=tenant.space)
    minted = lease_mint(run=run, kind="replay")
    for _ in range(3):
        lease_check(minted.token, kind="replay")
    deadline = time.monotonic() + 10
    lease = ViewerLease.objects.get(pk=minted.lease.pk)
    while lease.use_count < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        lease.refresh_from_db()
    assert lease.use_count == 3
    assert lease.first_used_at is not None
    assert lease.last_used_at is not None
    assert lease.first_used_at <= lease.last_used_at
