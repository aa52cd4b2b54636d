"""Keeps the processes of `manage.py serve` running: a child that exits is started again.

Every exit is logged with its code (or signal) and how long the child ran, and so is every
restart. A child that keeps failing waits longer each time before its next start: the
first delay, doubled after each exit that came sooner than `stable_s` after the start, up
to `max_delay_s`; a child that ran at least `stable_s` starts again after the first delay.
The other children go on meanwhile: a crashed runtime host or Celery worker does not take
the web server down.

`stop()` (serve calls it on SIGINT and SIGTERM) ends the loop: every child gets SIGTERM,
then SIGKILL if it is still there after `stop_timeout_s`. Each child runs in a process
group of its own, so a Ctrl-C in the terminal reaches the supervisor alone and the
children stop in this one orderly way; on Linux a child also gets SIGTERM if the
supervisor itself dies (killed with -9), rather than living on without it.
"""

import ctypes
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _exit_with_parent() -> None:
    """In the forked child, before exec: SIGTERM when the parent process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


@dataclass
class Child:
    """One supervised command and the state of its restarts."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    restarts: int = 0
    quick_exits: int = 0  # exits in a row that came sooner than `stable_s` after a start
    restart_at: float | None = None  # when it is due to start again, while it is down

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, now: float) -> None:
        # The argv lists come from serve's own interpreter and settings, never from input.
        self.process = subprocess.Popen(  # noqa: S603
            list(self.argv),
            env=self.env,
            process_group=0,
            preexec_fn=_exit_with_parent if sys.platform == "linux" else None,
        )
        self.started_at = now
        self.restart_at = None


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        restart_delay_s: float,
        max_delay_s: float,
        stable_s: float,
        stop_timeout_s: float = 10.0,
        poll_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = list(children)
        self.restart_delay_s = restart_delay_s
        self.max_delay_s = max(max_delay_s, restart_delay_s)
        self.stable_s = stable_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.clock = clock
        self.stopping = False

    def stop(self) -> None:
        """Asks `run()` to stop every child and return; safe to call from a signal handler."""
        self.stopping = True

    def run(self) -> None:
        """Starts the children and keeps them running until `stop()`; then stops them."""
        try:
            self.start_children(self.clock())
            while not self.stopping:
                self.check(self.clock())
                time.sleep(self.poll_s)
        finally:
            self.stop_children()

    def start_children(self, now: float) -> None:
        for child in self.children:
            child.start(now)
            logger.info("Started %s (pid %s)", child.name, child.pid)

    def check(self, now: float) -> None:
        """One look at every child: note the ones that exited, restart the ones due."""
        for child in self.children:
            if self.stopping:
                return
            if child.restart_at is None:
                if child.process is not None and child.process.poll() is not None:
                    self._exited(child, now)
            elif now >= child.restart_at:
                child.restarts += 1
                child.start(now)
                logger.warning(
                    "Restarted %s (pid %s, restart %d)", child.name, child.pid, child.restarts
                )

    def delay_after_exit(self, child: Child, ran_for: float) -> float:
        """The wait before the next start of a child that exited after `ran_for` seconds."""
        if ran_for >= self.stable_s:
            child.quick_exits = 0
        delay = min(self.restart_delay_s * 2**child.quick_exits, self.max_delay_s)
        child.quick_exits += 1
        return delay

    def _exited(self, child: Child, now: float) -> None:
        assert child.process is not None
        ran_for = now - child.started_at
        delay = self.delay_after_exit(child, ran_for)
        child.restart_at = now + delay
        logger.error(
            "%s (pid %s) exited with %s after %.1f s; restarting it in %.1f s",
            child.name,
            child.pid,
            describe_exit(child.process.returncode),
            ran_for,
            delay,
        )

    def stop_children(self) -> None:
        running = [child for child in self.children if child.running()]
        if running:
            logger.info("Stopping %s", ", ".join(child.name for child in running))
        for child in running:
            assert child.process is not None
            child.process.terminate()
        started = time.monotonic()
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.1, started + self.stop_timeout_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s did not stop within %.0f s; killing it", child.name, self.stop_timeout_s
                )
                child.process.kill()
                child.process.wait()
            logger.info(
                "%s stopped (%s, %.1f s)",
                child.name,
                describe_exit(child.process.returncode),
                time.monotonic() - started,
            )


def install_stop_handlers(supervisor: Supervisor) -> None:
    """SIGINT (Ctrl-C) and SIGTERM stop the supervisor and its children."""

    def on_signal(signum: int, frame: object) -> None:
        supervisor.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
