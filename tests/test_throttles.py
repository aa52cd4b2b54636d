"""Rate limits (runs/api/throttles.py) on runtime starts and lease minting, and sign-in
throttling (dashboard/signin.py). The rrweb ingest's limit is tested with the ingest, through
both of its paths (tests/test_recording_ingest.py)."""

import uuid
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from recordings.models import Recording
from runs import services
from runs.api import throttles
from runs.api.throttles import Rate, parse_rate
from runs.models import ApiKey, Run, Runtime
from runtimes import services as runtime_services
from viewers.models import ViewerLease

from .conftest import MEMBER_PASSWORD, Tenant, make_tenant


def assert_rate_limited(response: Any, message_part: str, wait: int = 30) -> None:
    """A 429 at the `rate_clock`'s time: 30 s before a minute's (or hour's) window ends,
    or `wait` for another window."""
    assert response.status_code == 429
    assert response["Retry-After"] == str(wait)
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert message_part in error["message"]
    assert error["details"] == {"retryAfter": wait}


@pytest.fixture
def runtime(tenant: Tenant) -> Runtime:
    return runtime_services.runtime_create(space=tenant.space, name="limited")


def start(tenant: Tenant, runtime: Runtime) -> Any:
    return tenant.client.post(f"/v1/runtimes/{runtime.id}/start", {}, format="json")


def test_runtime_starts_past_the_keys_rate_are_429_and_start_nothing(
    tenant: Tenant, runtime: Runtime, settings: Any, rate_clock: float
) -> None:
    settings.BCTRL_RATE_RUNTIME_START_PER_KEY = "2/min"
    settings.BCTRL_RUNTIME_START_TIMEOUT_S = 0.01  # no host here: each start is a 503
    assert [start(tenant, runtime).status_code for _ in range(2)] == [503, 503]
    runs = Run.objects.count()
    response = start(tenant, runtime)
    assert_rate_limited(response, "Too many runtime starts: at most 2 a minute per API key")
    assert Run.objects.count() == runs
    assert Runtime.objects.get(pk=runtime.pk).status != Runtime.Status.STARTING
    # Another key has a count of its own.
    _, raw = ApiKey.objects.issue(space=tenant.space, name="second")
    tenant.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert start(tenant, runtime).status_code == 503


def test_runtime_starts_past_the_addresss_rate_are_429_whatever_the_key(
    tenant: Tenant, runtime: Runtime, settings: Any, rate_clock: float
) -> None:
    settings.BCTRL_RATE_RUNTIME_START_PER_KEY = "off"
    settings.BCTRL_RATE_RUNTIME_START_PER_IP = "2/hour"
    settings.BCTRL_RUNTIME_START_TIMEOUT_S = 0.01
    for _ in range(2):
        _, raw = ApiKey.objects.issue(space=tenant.space, name=uuid.uuid4().hex)
        tenant.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert start(tenant, runtime).status_code == 503
    response = start(tenant, runtime)
    assert_rate_limited(response, "at most 2 an hour per client address", 3570)


def test_lease_minting_and_download_urls_share_one_rate(
    tenant: Tenant, settings: Any, rate_clock: float
) -> None:
    settings.BCTRL_RATE_LEASE_PER_KEY = "3/min"
    run = services.run_create(space=tenant.space)
    recording = Recording.objects.create(
        space=tenant.space, run=run, status=Recording.Status.RECORDING
    )
    client = tenant.client
    assert client.post(f"/v1/runs/{run.id}/recording", {}, format="json").status_code == 200
    live = client.post(f"/v1/runs/{run.id}/live", {"control": "none"}, format="json")
    assert live.status_code == 200
    assert client.get(f"/api/v1/recordings/{recording.id}/download").status_code == 202
    leases = ViewerLease.objects.count()
    for response in [
        client.post(f"/v1/runs/{run.id}/recording", {}, format="json"),
        client.post(f"/v1/runs/{run.id}/live", {"control": "none"}, format="json"),
        client.get(f"/api/v1/recordings/{recording.id}/download"),
    ]:
        assert_rate_limited(response, "Too many viewer and download links")
    assert ViewerLease.objects.count() == leases
    # Reading the leases is not minting: not limited.
    assert client.get(f"/v1/runs/{run.id}/leases").status_code == 200


def test_a_rate_limit_whose_cache_is_down_lets_requests_through(
    tenant: Tenant, settings: Any, caplog: Any
) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.BCTRL_RATE_LEASE_PER_KEY = "1/min"
    run = services.run_create(space=tenant.space)
    for _ in range(2):
        response = tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json")
        assert response.status_code == 200
    assert "Rate limit lease not checked: the cache failed" in caplog.text


def test_the_counts_are_shared_through_redis(
    tenant: Tenant, settings: Any, redis_url: str, rate_clock: float
) -> None:
    import redis

    prefix = f"bctrl-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    settings.BCTRL_RATE_LEASE_PER_KEY = "1/min"
    run = services.run_create(space=tenant.space)
    try:
        first = tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json")
        assert first.status_code == 200
        stored = redis.Redis.from_url(redis_url).keys(f"{prefix}:*")
        assert any(b":rate:lease:key:" in key for key in stored)
        second = tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json")
        assert_rate_limited(second, "at most 1 a minute per API key")
    finally:
        connection = redis.Redis.from_url(redis_url)
        for key in connection.keys(f"{prefix}:*"):
            connection.delete(key)


@pytest.mark.parametrize("text", ["10", "10/fortnight", "ten/min", "-1/min", ""])
def test_a_rate_setting_it_does_not_understand_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="BCTRL_RATE_X"):
        parse_rate("BCTRL_RATE_X", text)


def test_rate_settings_read_as_counts_per_period() -> None:
    assert parse_rate("X", "60/min") == Rate(60, 60)
    assert parse_rate("X", " 5 / hour ") == Rate(5, 3600)
    assert parse_rate("X", "off") is None


def test_behind_trusted_proxies_the_address_is_the_one_they_saw(settings: Any) -> None:
    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9"}
    assert throttles.client_ip(meta) == "10.0.0.2"
    settings.BCTRL_TRUSTED_PROXIES = 1
    assert throttles.client_ip(meta) == "203.0.113.9"  # not the address the client wrote


# --- sign-in ------------------------------------------------------------------------------


def sign_in(client: Client, password: str, path: str = "/login/") -> Any:
    return client.post(path, {"username": "ada", "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_right_password_after_25_wrong_ones_does_not_sign_in(
    member: Any, settings: Any, rate_clock: float
) -> None:
    settings.BCTRL_RATE_SIGN_IN_PER_IP = "off"
    client = Client()
    answers = [sign_in(client, f"wrong {n}").status_code for n in range(25)]
    assert answers[:5] == [200] * 5  # the form says the password is wrong
    assert set(answers[5:]) == {429}
    response = sign_in(client, MEMBER_PASSWORD)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert "Too many failed sign-ins for this username. Try again in 15 minutes." in (
        response.content.decode()
    )
    assert not signed_in(client)
    # The admin's sign-in refuses it too.
    assert sign_in(client, MEMBER_PASSWORD, "/admin/login/").status_code == 429
    # Another address is not locked out, and the lockout ends.
    other = Client(REMOTE_ADDR="192.0.2.7")
    assert sign_in(other, MEMBER_PASSWORD).status_code == 302
    later = rate_clock + settings.BCTRL_SIGN_IN_LOCKOUT_S + 1
    with mock.patch.object(throttles, "clock", return_value=later):
        assert sign_in(client, MEMBER_PASSWORD).status_code == 302
    assert signed_in(client)


def test_a_successful_sign_in_clears_the_failures(member: Any, settings: Any) -> None:
    settings.BCTRL_SIGN_IN_MAX_FAILURES = 3
    client = Client()
    for _ in range(2):
        assert sign_in(client, "wrong").status_code == 200
    assert sign_in(client, MEMBER_PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert sign_in(client, "wrong").status_code == 200
    assert sign_in(client, MEMBER_PASSWORD).status_code == 302


def test_the_backend_refuses_a_locked_out_username_whatever_the_form(member: Any, rf: Any) -> None:
    from django.contrib.auth import authenticate

    request = rf.post("/somewhere-else/")
    for _ in range(5):
        assert authenticate(request, username="ada", password="wrong") is None
    assert authenticate(request, username="ada", password=MEMBER_PASSWORD) is None
    assert authenticate(None, username="ada", password=MEMBER_PASSWORD) == member


def test_sign_in_attempts_past_the_addresss_rate_are_429(
    member: Any, settings: Any, rate_clock: float
) -> None:
    settings.BCTRL_RATE_SIGN_IN_PER_IP = "3/min"
    client = Client()
    for name in ["nobody", "someone", "ada"]:
        client.post("/login/", {"username": name, "password": "wrong"})
    response = sign_in(client, MEMBER_PASSWORD)
    assert response.status_code == 429
    assert "Too many sign-in attempts. Try again in 1 minute." in response.content.decode()
    assert not signed_in(client)
    assert client.get("/login/").status_code == 200  # the page itself still opens


def test_another_tenant_has_its_own_key_counts(db: None, settings: Any, rate_clock: float) -> None:
    settings.BCTRL_RATE_LEASE_PER_KEY = "1/min"
    for slug in ["one", "two"]:
        tenant = make_tenant(slug)
        run = services.run_create(space=tenant.space)
        response = tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json")
        assert response.status_code == 200
