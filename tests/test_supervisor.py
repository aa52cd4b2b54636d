"""The supervisor of `manage.py serve` (bctrl_site/supervisor.py), with real child processes.

The fault test of the whole `make run` (kill -9 of the runtime host and the Celery worker
while the API answers) is tests/test_serve_faults.py.
"""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bctrl_site.supervisor import Child, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def exits_with(code: int) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.exit({code})"]


def supervisor_of(*children: Child, **options: Any) -> Supervisor:
    return Supervisor(
        children,
        restart_delay_s=options.pop("restart_delay_s", 1.0),
        max_delay_s=options.pop("max_delay_s", 8.0),
        stable_s=options.pop("stable_s", 60.0),
        **options,
    )


def wait_exited(child: Child) -> None:
    assert child.process is not None
    child.process.wait(10)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


def test_a_child_that_exits_is_started_again_after_the_delay_and_the_others_run_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashing, steady = Child("worker", exits_with(3)), Child("web", SLEEPER)
    supervisor = supervisor_of(crashing, steady)
    caplog.set_level(logging.INFO, logger="bctrl_site.supervisor")
    try:
        supervisor.start_children(0.0)
        first_pid, web_pid = crashing.pid, steady.pid
        wait_exited(crashing)

        supervisor.check(0.5)
        exited = f"worker (pid {first_pid}) exited with code 3 after 0.5 s; restarting it in 1.0 s"
        assert exited in caplog.text
        supervisor.check(1.4)
        assert crashing.pid == first_pid  # still waiting out its delay

        supervisor.check(1.5)
        assert crashing.pid != first_pid
        assert crashing.restarts == 1
        assert f"Restarted worker (pid {crashing.pid}, restart 1)" in caplog.text
        assert steady.pid == web_pid and steady.running()
    finally:
        supervisor.stop_children()


def test_quick_exits_double_the_delay_up_to_the_maximum_and_a_stable_run_resets_it() -> None:
    child = Child("runtime_host", SLEEPER)
    supervisor = supervisor_of(child, restart_delay_s=1.0, max_delay_s=8.0, stable_s=60.0)

    quick = [supervisor.delay_after_exit(child, ran_for=2.0) for _ in range(6)]
    after_a_stable_run = supervisor.delay_after_exit(child, ran_for=60.0)
    next_quick = supervisor.delay_after_exit(child, ran_for=0.1)

    assert quick == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert (after_a_stable_run, next_quick) == (1.0, 2.0)


def test_stopping_terminates_every_child_and_kills_one_that_ignores_sigterm(
    tmp_path: Path,
) -> None:
    ready = tmp_path / "ready"
    stubborn_code = textwrap.dedent(
        f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
        """
    )
    polite, stubborn = Child("web", SLEEPER), Child("beat", [sys.executable, "-c", stubborn_code])
    supervisor = supervisor_of(polite, stubborn, stop_timeout_s=1.0)
    supervisor.start_children(0.0)
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)

    supervisor.stop_children()

    assert polite.process is not None and polite.process.returncode == -signal.SIGTERM
    assert stubborn.process is not None and stubborn.process.returncode == -signal.SIGKILL


def test_the_loop_returns_and_stops_the_children_once_asked_to_stop() -> None:
    child = Child("web", SLEEPER)
    supervisor = supervisor_of(child, poll_s=0.05)
    checks = 0

    def clock() -> float:
        nonlocal checks
        checks += 1
        if checks == 3:
            supervisor.stop()  # as the SIGINT/SIGTERM handler does
        return time.monotonic()

    supervisor.clock = clock
    supervisor.run()

    assert child.process is not None and child.process.returncode == -signal.SIGTERM


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_children_end_when_the_supervisor_itself_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    child_code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); " + (
        "time.sleep(60)"
    )
    script = textwrap.dedent(
        f"""
        import sys
        from bctrl_site.supervisor import Child, Supervisor
        child = Child("web", [sys.executable, "-c", {child_code!r}])
        Supervisor([child], restart_delay_s=1, max_delay_s=1, stable_s=60).run()
        """
    )
    root = Path(__file__).resolve().parent.parent
    supervisor = subprocess.Popen([sys.executable, "-c", script], cwd=root)
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.05)
        child_pid = int(pid_file.read_text())

        supervisor.kill()
        supervisor.wait(10)

        deadline = time.monotonic() + 10
        while alive(child_pid):
            assert time.monotonic() < deadline, "the child outlived its supervisor"
            time.sleep(0.05)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        if pid_file.exists() and pid_file.read_text() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
