"""The browser as its parts see it: the instrumentation, network log, page capture,
downloads, screenshots, profile sync, live link and video each take a `HostedBrowser`
(runtime_host.browser.ManagedBrowser is the one) instead of importing the browser, which
imports them."""

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from runs.cdp_client import CdpConnection
from runs.models import Run, Runtime
from runtime_host.targets import Targets
from runtime_host.writer import RunWriter


class HostedBrowser(Protocol):
    @property
    def cdp(self) -> CdpConnection | None: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def run(self) -> Run: ...

    @property
    def writer(self) -> RunWriter: ...

    @property
    def targets(self) -> Targets: ...

    @property
    def options(self) -> dict[str, Any]: ...

    @property
    def download_dir(self) -> Path: ...

    @property
    def upload_dir(self) -> Path: ...

    @property
    def bound(self) -> bool: ...

    @property
    def recording_enabled(self) -> bool: ...

    @property
    def stopping(self) -> bool: ...

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None: ...

    async def set_recording(self, enabled: bool) -> None: ...
