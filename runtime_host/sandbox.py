"""How a runtime's Chromium is confined on the machine (runs/confinement.py says what it
may reach; this module how).

With bubblewrap (`bwrap`, Debian's package; `make run` installs it beside Chromium) the
browser runs in its own mount and PID namespace, with every capability dropped. It sees
the system's programs and libraries read-only (`/usr`, `/etc`, `/sys`), an empty `/tmp`,
its Playwright profile and its runtime's own folder (downloads, uploads, home) and nothing
else: not the project, not `var/` (recordings, files, the generated secret key), not
another runtime's folder. Inside, Chromium's managed policy (`/etc/chromium/policies`,
bound from a folder of ours) blocklists the schemes of runs.confinement.BLOCKED_SCHEMES.

BCTRL_BROWSER_SANDBOX picks the mode: `auto` (bwrap where it works here, else unconfined
with a warning in the log: the embedded default), `bwrap` (required: a runtime fails to
start without it; the default with BCTRL_PRODUCTION=1) or `off`.

Either way the browser gets a minimal environment (no SECRET_KEY, database URL or cloud
credentials of the host process) and sends all traffic through its egress proxy.
"""

import functools
import json
import logging
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from runs.confinement import BLOCKED_SCHEMES

logger = logging.getLogger(__name__)

MODES = ("auto", "bwrap", "off")
# Parts of the system the browser needs, bound read-only when they exist.
_READ_ONLY = ("/usr", "/etc", "/sys", "/var/cache/fontconfig", "/opt/google", "/snap")
# Files of /etc the browser has no business reading.
_HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
_USR_MERGED = ("lib", "lib32", "lib64", "libx32", "bin", "sbin")


def url_blocklist() -> list[str]:
    return [
        f"{scheme}:*" if scheme == "view-source" else f"{scheme}://*" for scheme in BLOCKED_SCHEMES
    ]


def policy() -> dict[str, object]:
    """Chromium's managed policy inside the sandbox."""
    return {
        "URLBlocklist": url_blocklist(),
        "PromptForDownloadLocation": False,
        "PasswordManagerEnabled": False,
        "BrowserSignin": 0,
        "MetricsReportingEnabled": False,
    }


@functools.cache
def bwrap_works() -> bool:
    """bwrap is installed and may make namespaces here (containers may forbid it)."""
    binary = shutil.which("bwrap")
    if binary is None:
        return False
    try:
        probe = subprocess.run(  # noqa: S603 (our own fixed argv)
            [binary, "--ro-bind", "/", "/", "--unshare-pid", "--die-with-parent", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if probe.returncode != 0:
        logger.warning("bwrap cannot make a sandbox here: %s", probe.stderr.decode()[:300])
    return probe.returncode == 0


def mode() -> str:
    value = settings.BCTRL_BROWSER_SANDBOX
    if value not in MODES:
        raise ImproperlyConfigured(f"BCTRL_BROWSER_SANDBOX must be one of {', '.join(MODES)}")
    return value


def confined() -> bool:
    """Whether browsers launched now run inside bwrap (raises when it is required but
    cannot run)."""
    chosen = mode()
    if chosen == "off":
        return False
    if bwrap_works():
        return True
    if chosen == "bwrap":
        raise RuntimeError(
            "BCTRL_BROWSER_SANDBOX=bwrap but bubblewrap is not installed or cannot make "
            "namespaces on this machine (apt-get install bubblewrap)"
        )
    logger.warning(
        "Hosted browsers run without a filesystem sandbox (bubblewrap is unavailable): "
        "they cannot open file: URLs through the CDP proxy, but a browser process could "
        "read what its user can read. Install bubblewrap to confine them."
    )
    return False


@dataclass
class Sandbox:
    """The launch of one runtime's browser: a folder of its own and how to start it."""

    root: Path  # the runtime's folder on the host; only `shared` is visible inside

    def __post_init__(self) -> None:
        self.shared = self.root / "browser"
        self.downloads = self.shared / "downloads"
        self.uploads = self.shared / "uploads"
        self.home = self.shared / "home"
        for folder in (self.downloads, self.uploads, self.home):
            folder.mkdir(parents=True, exist_ok=True)
        self.confined = confined()

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]
        return {**env, **(extra or {})}

    def place_upload(self, name: str, source: BinaryIO) -> Path:
        """Copies a file into the uploads folder, under `name` (already safe as a file
        name) unless another file has it, and returns where it is."""
        stem, suffix = os.path.splitext(name)
        target = self.uploads / f"{stem}{suffix}"
        number = 1
        while target.exists():
            number += 1
            target = self.uploads / f"{stem} ({number}){suffix}"
        with open(target, "xb") as copy:
            shutil.copyfileobj(source, copy, 256 * 1024)
        return target

    def executable(self, chromium: str) -> str:
        """What Playwright launches: Chromium itself, or a script that starts it in bwrap."""
        if not self.confined:
            return chromium
        policies = self.root / "policies"
        (policies / "managed").mkdir(parents=True, exist_ok=True)
        (policies / "managed" / "bctrl.json").write_text(json.dumps(policy()))
        script = self.root / "launch.sh"
        argv = ["bwrap", *self._binds(policies), "--", chromium]
        # Playwright's profile folder is named on the command line it passes through.
        script.write_text(
            "#!/bin/sh\n"
            'profile=""\n'
            'for arg in "$@"; do case "$arg" in --user-data-dir=*) '
            'profile="${arg#--user-data-dir=}";; esac; done\n'
            f"exec {' '.join(shlex.quote(a) for a in argv[:-2])} "
            '--bind "$profile" "$profile" '
            f'{" ".join(shlex.quote(a) for a in argv[-2:])} "$@"\n'
        )
        script.chmod(0o700)
        return str(script)

    def _binds(self, policies: Path) -> list[str]:
        args: list[str] = []
        for name in _USR_MERGED:
            link = Path("/") / name
            if link.is_symlink():
                args += ["--symlink", os.readlink(link), str(link)]
            elif link.is_dir():
                args += ["--ro-bind", str(link), str(link)]
        for path in _READ_ONLY:
            if Path(path).exists():
                args += ["--ro-bind", path, path]
        for path in _HIDDEN_FILES:
            if Path(path).exists():
                args += ["--ro-bind", "/dev/null", path]
        if Path("/etc/chromium").is_dir():
            args += ["--tmpfs", "/etc/chromium"]
            args += ["--ro-bind", str(policies), "/etc/chromium/policies"]
        # An empty /tmp and /dev/shm of its own (the host's are not shared with it).
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]  # noqa: S108
        args += ["--bind", str(self.shared), str(self.shared)]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
        args += ["--new-session", "--cap-drop", "ALL"]
        return args
