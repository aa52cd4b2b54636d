"""Where `manage.py serve` listens, and how other commands on this machine find it.

`serve` writes `<BCTRL_VAR_DIR>/server.json` (`{"url", "pid"}`) when it starts and removes
it when it stops; `manage.py demo` reads it (`running_server_url`), so it finds the server
that `make run` started on whatever port, without flags. A file left by a serve that was
killed outright names a process that is gone, and is not believed.

No Django import here: settings.py uses `local_url` for the defaults of SITE_URL and the
runtime host's link.
"""

import contextlib
import json
import os
from pathlib import Path

SERVER_FILE = "server.json"
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 (recognised, not bound)


def listens_everywhere(host: str) -> bool:
    return host in _WILDCARD_HOSTS


def local_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL that reaches a server bound to `host:port` from this machine: a wildcard
    address is reached on 127.0.0.1, an IPv6 address goes in brackets."""
    address = "127.0.0.1" if listens_everywhere(host) else host
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"{scheme}://{address}:{port}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def server_announce(var_dir: Path, url: str) -> None:
    """Notes that this process serves bctrl at `url` (written whole, never half)."""
    path = var_dir / SERVER_FILE
    partial = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    partial.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    partial.replace(path)


def server_withdraw(var_dir: Path) -> None:
    """Removes the note, if it is this process's (another serve may have started since)."""
    path = var_dir / SERVER_FILE
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError, AttributeError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def running_server_url(var_dir: Path) -> str | None:
    """The URL of the serve running on this var folder, or None when there is none."""
    try:
        note = json.loads((var_dir / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict):
        return None
    url, pid = note.get("url"), note.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int) or pid <= 0 or not _pid_alive(pid):
        return None
    return url
