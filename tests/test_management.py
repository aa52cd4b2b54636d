"""The set-up commands that `make run` and scripts use."""

import io
import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from runs.models import ApiKey, Space

from .processes import ROOT


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_bootstrap_prints_a_working_key_once(db: None, client: Any) -> None:
    first = run_command("bootstrap")
    key = next(word for word in first.split() if word.startswith("bctrl_sk_"))
    assert "password" in first
    assert client.get("/v1/runs", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    second = run_command("bootstrap")
    assert "bctrl_sk_" not in second
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert ApiKey.objects.count() == 1


def test_create_space_and_api_key_are_scriptable(db: None, client: Any) -> None:
    space_id = run_command(
        "create_space", "Team QA", "--embed-origin", "https://qa.example"
    ).strip()
    space = Space.objects.get(pk=space_id)
    assert space.slug == "team-qa"
    assert space.allowed_embed_origins == ["https://qa.example"]
    key = run_command("create_api_key", "--space", "team-qa", "--name", "ci").strip()
    assert key.startswith("bctrl_sk_")
    assert client.get("/v1/runs", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert run_command("create_api_key", "--space", space_id).strip() != key


def test_create_api_key_refuses_an_unknown_space(db: None) -> None:
    with pytest.raises(CommandError, match="No space"):
        run_command("create_api_key", "--space", "nope")


def test_create_space_refuses_a_taken_slug(db: None) -> None:
    run_command("create_space", "Ops")
    with pytest.raises(CommandError, match="exists"):
        run_command("create_space", "Ops")


def test_ci_runs_the_suite_on_postgresql(db: None) -> None:
    """With REQUIRE_SERVICES=1 (CI), the suite must not quietly fall back to SQLite."""
    if os.environ.get("REQUIRE_SERVICES") != "1":
        pytest.skip("only CI promises PostgreSQL (REQUIRE_SERVICES is not 1)")
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.REDIS_URL


def test_collectstatic_builds_the_production_manifest(tmp_path: Any, settings: Any) -> None:
    """`make run` collects static files with hashed names before it serves them."""
    from django.contrib.staticfiles.storage import staticfiles_storage

    settings.STATIC_ROOT = str(tmp_path)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "bctrl_site.storage.StaticFilesStorage"},
    }
    run_command("collectstatic", "--noinput", "--verbosity", "0")
    manifest = (tmp_path / "staticfiles.json").read_text()
    assert "vendor/rrweb/umd/rrweb.min.js" in manifest
    assert "css/dashboard.css" in manifest
    assert staticfiles_storage.url("css/dashboard.css") != "/static/css/dashboard.css"


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("BCTRL_PRODUCTION", "ture", "is not a yes/no value"),
        ("CELERY_TASK_ALWAYS_EAGER", "maybe", "is not a yes/no value"),
        ("PORT", "80a", "is not a whole number"),
    ],
)
def test_a_setting_it_cannot_read_stops_the_process_with_its_name(
    name: str, value: str, said: str
) -> None:
    env = {**os.environ, name: value}
    answer = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode != 0
    assert f"ImproperlyConfigured: {name}={value!r} {said}" in answer.stderr
