"""The files a run's browser downloads: Chromium writes every browser context's downloads
(clients' contexts too) into the sandbox's downloads folder, and each finished one is
stored as a `download` artifact of the run, with a `download` event after the events
before it."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from runs.models import Artifact
from runs.services import artifact_store
from runtime_host.parts import HostedBrowser

logger = logging.getLogger(__name__)


@dataclass
class Download:
    url: str
    name: str
    page_id: str


class Downloads:
    def __init__(self, browser: HostedBrowser) -> None:
        self.browser = browser
        self.contexts_with_downloads: set[str] = set()
        self.in_progress: dict[str, Download] = {}  # by the download's guid

    def behavior(self, browser_context_id: str = "") -> dict[str, Any]:
        """Browser.setDownloadBehavior's params: into our folder, with progress events."""
        params: dict[str, Any] = {"behavior": "allowAndName"}
        if browser_context_id:
            params["browserContextId"] = browser_context_id
        return {**params, "downloadPath": str(self.browser.download_dir), "eventsEnabled": True}

    def context_created(self, browser_context_id: str) -> None:
        """Downloads of every browser context (clients' contexts too) land in our folder."""
        if not browser_context_id or browser_context_id in self.contexts_with_downloads:
            return
        self.contexts_with_downloads.add(browser_context_id)
        assert self.browser.cdp is not None
        self.browser.cdp.send_nowait(
            "Browser.setDownloadBehavior", self.behavior(browser_context_id)
        )

    def will_begin(self, params: dict[str, Any]) -> None:
        frame_id = params.get("frameId", "")
        self.in_progress[params["guid"]] = Download(
            url=params.get("url", ""),
            name=params.get("suggestedFilename") or "download",
            page_id=frame_id if frame_id in self.browser.targets.page_infos else "",
        )

    def progress(self, params: dict[str, Any]) -> None:
        state = params.get("state")
        if state in ("completed", "canceled"):
            download = self.in_progress.pop(params["guid"], None)
            if download is not None and state == "completed":
                self.browser.spawn(self._store(params, download))

    async def _store(self, params: dict[str, Any], download: Download) -> None:
        folder = self.browser.download_dir
        run = self.browser.run
        path = Path(params.get("filePath") or folder / params["guid"])
        if not path.resolve().is_relative_to(folder.resolve()):
            # Only what the browser wrote into its own folder is the run's file.
            logger.warning("Download %s of run %s is outside its folder", path, run.id)
            return

        def store() -> str:
            close_old_connections()
            with open(path, "rb") as handle:
                artifact = artifact_store(
                    run=run,
                    kind=Artifact.Kind.DOWNLOAD,
                    name=download.name,
                    content=handle,
                    metadata={"url": download.url},
                )
            return artifact.id

        writer = self.browser.writer
        try:
            await writer.flush()  # the events before it keep their order
            artifact_id = await sync_to_async(store, thread_sensitive=False)()
        except Exception:
            logger.exception("Storing download %s of run %s failed", download.name, run.id)
            return
        writer.event(
            "download",
            {"url": download.url, "suggestedFilename": download.name, "artifactId": artifact_id},
            page_id=download.page_id,
        )
