import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from bctrl_site.serving import listens_everywhere, local_url, server_announce, server_withdraw
from bctrl_site.supervisor import Child, Supervisor, install_stop_handlers


class Command(BaseCommand):
    help = (
        "Starts the web server (daphne), the runtime host, the Celery worker and beat, "
        "restarts any of them that exits (bctrl_site/supervisor.py); Ctrl-C stops them all. "
        "Notes its URL in the var folder for `manage.py demo` (bctrl_site/serving.py)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--host", default=settings.HOST)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            for folder in ("queue", "control"):
                (settings.CELERY_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
        python = sys.executable
        commands = {
            "web": [
                # daphne, with its access log sent through logging (where lease tokens
                # are redacted) and websocket denial responses (bctrl_site/webserver.py).
                python, "-m", "bctrl_site.webserver",
                "-b", options["host"], "-p", str(options["port"]),
                "--proxy-headers",
                # CDP messages through the connectUrl proxy (screenshots, DOM snapshots)
                # exceed daphne's 1 MiB default, which it would drop.
                "--websocket-max-message-size", str(settings.BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES),
                "--websocket-max-frame-size", str(settings.BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES),
                "bctrl_site.asgi:application",
            ],
            "worker": [
                python, "-m", "celery", "-A", "bctrl_site", "worker", "--loglevel", "INFO",
                "--concurrency", os.environ.get("CELERY_CONCURRENCY", "2"),
            ],
            # Runs the browsers of runtimes (Chromium via Playwright), see runtime_host/.
            "runtime_host": [python, str(settings.BASE_DIR / "manage.py"), "runtime_host"],
            "beat": [
                python, "-m", "celery", "-A", "bctrl_site", "beat", "--loglevel", "INFO",
                "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        }  # fmt: skip
        # Every child reads the address served, not the environment's: SITE_URL (unless
        # set) and the runtime host's link to this web server default to it (settings.py).
        env = {**os.environ, "HOST": options["host"], "PORT": str(options["port"])}
        supervisor = Supervisor(
            [Child(name, argv, env) for name, argv in commands.items()],
            restart_delay_s=settings.BCTRL_SERVE_RESTART_DELAY_S,
            max_delay_s=settings.BCTRL_SERVE_RESTART_MAX_DELAY_S,
            stable_s=settings.BCTRL_SERVE_STABLE_S,
        )
        install_stop_handlers(supervisor)
        url = local_url(options["host"], options["port"])
        self.stdout.write(banner(url, options["host"], os.environ.get("SITE_URL", "")))
        self.stdout.flush()  # before the children's logs, also when stdout is a pipe
        server_announce(settings.VAR_DIR, url)
        try:
            supervisor.run()
        finally:
            server_withdraw(settings.VAR_DIR)


def banner(url: str, host: str, site_url: str) -> str:
    """What serve prints first: where to open bctrl, and what else decides its addresses."""
    lines = [f"bctrl is running at {url}/ (Ctrl-C stops it)"]
    if listens_everywhere(host):
        lines.append(f"  listening on every interface ({host or 'all'}) of this machine")
    if site_url.rstrip("/") not in ("", url):
        lines.append(f"  links it hands out use SITE_URL, {site_url.rstrip('/')}")
    return "\n".join(lines)
