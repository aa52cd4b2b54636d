import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from bctrl_site.supervisor import Child, Supervisor, install_stop_handlers


class Command(BaseCommand):
    help = (
        "Starts the web server (daphne), the runtime host, the Celery worker and beat, "
        "restarts any of them that exits (bctrl_site/supervisor.py); Ctrl-C stops them all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

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
        # The runtime host sends live-view frames to this web server (unless told otherwise).
        host_env = dict(os.environ)
        if "BCTRL_HOST_LINK_URL" not in os.environ:
            wildcard = ("0.0.0.0", "::", "")  # noqa: S104 (recognised, not bound)
            address = "127.0.0.1" if options["host"] in wildcard else options["host"]
            host_env["BCTRL_HOST_LINK_URL"] = f"ws://{address}:{options['port']}"
        envs = {"runtime_host": host_env}
        supervisor = Supervisor(
            [Child(name, argv, envs.get(name)) for name, argv in commands.items()],
            restart_delay_s=settings.BCTRL_SERVE_RESTART_DELAY_S,
            max_delay_s=settings.BCTRL_SERVE_RESTART_MAX_DELAY_S,
            stable_s=settings.BCTRL_SERVE_STABLE_S,
        )
        install_stop_handlers(supervisor)
        self.stdout.write(
            f"bctrl is running at http://{options['host']}:{options['port']}/ (Ctrl-C stops it)"
        )
        supervisor.run()
