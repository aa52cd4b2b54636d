import asyncio
import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from runtime_host.host import RuntimeHost

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Runs browsers for runtimes waiting to start; SIGTERM/SIGINT stops them cleanly."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-browsers", type=int, default=None)
        parser.add_argument("--host-id", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._run(options["host_id"], options["max_browsers"]))

    async def _run(self, host_id: str | None, max_browsers: int | None) -> None:
        host = RuntimeHost(host_id=host_id, max_browsers=max_browsers)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, host.shutdown)
        self.stdout.write(f"Runtime host {host.host_id} started")
        await host.run()
        self.stdout.write(f"Runtime host {host.host_id} stopped")
