"""The Python client as its users meet it: `pip install ./sdk/python` builds and installs
the `bctrl` command without Django, and the README's first script runs as written."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from runs.models import Run, Runtime
from runtime_host.host import RuntimeHost
from tests.conftest import Tenant, services_required

REPO = Path(settings.BASE_DIR)
SDK = REPO / "sdk" / "python"


def readme_script() -> str:
    """The first Python block of the README's client section, as printed there."""
    text = (REPO / "README.md").read_text()
    section = text.split("## The Python client and the `bctrl` command", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_the_readme_opens_the_client_section_with_a_ten_line_script() -> None:
    lines = [line for line in readme_script().splitlines() if line.strip()]
    assert len(lines) == 10


def test_pip_installs_the_package_and_its_command(tmp_path: Path) -> None:
    """As on a fresh machine: pip builds it in an isolated environment (setuptools from the
    package index) and installs it with its `bctrl` command."""
    target = tmp_path / "site"
    source = tmp_path / "source"  # a copy: a build writes build/ and *.egg-info beside it
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0 and re.search(
        r"NewConnectionError|Could not find a version that satisfies the requirement setuptools",
        installed.stderr,
    ):
        reason = "the package index is not reachable (pip builds with setuptools from it)"
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    assert installed.returncode == 0, installed.stderr
    assert (target / "bctrl" / "py.typed").exists()
    assert (target / "bin" / "bctrl").exists()
    # Importable on its own, with no Django in sight (its dependencies from this venv).
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bctrl, bctrl.cli; "
        "assert bctrl.__file__.startswith(sys.argv[1]), bctrl.__file__; "
        "assert 'django' not in sys.modules; print(bctrl.Bctrl.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        capture_output=True,
        text=True,
        check=True,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        cwd=tmp_path,
    )
    assert done.stdout.strip() == "Bctrl"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_the_readme_script_runs_as_written(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, tmp_path: Path
) -> None:
    script = tmp_path / "hello.py"
    script.write_text(readme_script())
    env = {
        **os.environ,
        "BCTRL_API_KEY": tenant.raw_key,
        "BCTRL_BASE_URL": asgi_server,
        "PYTHONPATH": os.pathsep.join([str(SDK), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()[-1]
    assert "/embed/replay/" in printed
    runtime = Runtime.objects.get(space=tenant.space, name="hello")
    run = Run.objects.get(runtime=runtime)
    assert run.events.filter(type="navigation", data__url=asgi_server + "/demo/").exists()
