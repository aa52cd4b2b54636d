"""File choosers a page opens, for a person in the live view. Every page's chooser is
intercepted (Page.setInterceptFileChooserDialog: a headless browser has no dialog to
show); when one opens, the run's viewers are told (`fileChooser`, open), a person in
control picks files on their own computer, the web process keeps them as uploads of the
run, which this host places in the browser's uploads folder (runtime_host.host), and
then asks for them to be chosen (`chooseFiles`): they are set on the input that opened
the chooser, as if picked in its dialog. A chooser is gone once answered or when its
page navigates. A client's own interception (Playwright's `expect_file_chooser`) is
untouched: each CDP session that intercepts hears of every chooser."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from runtime_host.parts import HostedBrowser
from runtime_host.targets import Target

logger = logging.getLogger(__name__)

# How long setting the chosen files on the page's input may take.
CHOOSE_TIMEOUT_S = 5.0


class FileChoosers:
    def __init__(self, browser: HostedBrowser, queue: Callable[[str, str], None]) -> None:
        self.browser = browser
        self.queue = queue  # the live link's: (key, message) to the run's viewers
        # Tab (its page's target id) → the open chooser: its session, input and mode.
        self.open: dict[str, dict[str, Any]] = {}

    def opened(self, target: Target, params: dict[str, Any]) -> None:
        """Page.fileChooserOpened of a tab or of a frame of its own in it."""
        node = params.get("backendNodeId")
        if not isinstance(node, int) or not target.session_id:
            return
        tab = target.page_id or target.target_id
        self.open[tab] = {
            "session": target.session_id,
            "node": node,
            "multiple": params.get("mode") == "selectMultiple",
        }
        self.queue(f"chooser:{tab}", self.message(tab))

    def gone(self, tab: str) -> None:
        """The tab navigated or closed: its chooser, if any, is no longer there."""
        if self.open.pop(tab, None) is not None:
            self.queue(f"chooser:{tab}", self.message(tab))

    def message(self, tab: str, to: str = "") -> str:
        chooser = self.open.get(tab)
        return orjson.dumps(
            {
                "type": "fileChooser",
                "target": tab,
                "open": chooser is not None,
                "multiple": bool(chooser and chooser["multiple"]),
                **({"to": to} if to else {}),
            }
        ).decode()

    def tell(self, channel: str) -> None:
        """The open choosers, for one new viewer."""
        for tab in self.open:
            self.queue(f"chooser:{tab}:{channel}", self.message(tab, channel))

    async def choose(self, message: dict[str, Any]) -> None:
        """`chooseFiles` {target, paths}: files placed in the uploads folder, set on the
        input whose chooser the tab opened. Anything else is dropped and logged."""
        tab = message.get("target")
        paths = message.get("paths")
        chooser = self.open.get(tab) if isinstance(tab, str) else None
        cdp = self.browser.cdp
        if (
            chooser is None
            or cdp is None
            or not isinstance(paths, list)
            or not paths
            or not all(isinstance(path, str) and self._placed(path) for path in paths)
        ):
            logger.warning("Runtime %s: a file choice was dropped", self.browser.runtime.id)
            return
        files = paths if chooser["multiple"] else paths[:1]
        try:
            await cdp.send(
                "DOM.setFileInputFiles",
                {"files": files, "backendNodeId": chooser["node"]},
                chooser["session"],
                timeout=CHOOSE_TIMEOUT_S,
            )
        except Exception as exc:
            logger.warning("Runtime %s: choosing files failed: %s", self.browser.runtime.id, exc)
            return
        if self.open.get(str(tab)) is chooser:
            self.gone(str(tab))

    def _placed(self, path: str) -> bool:
        """A file the host placed in this browser's uploads folder (nothing else of the
        host's disk may be handed to a page)."""
        uploads = self.browser.upload_dir.resolve()
        candidate = Path(path).resolve()
        return candidate.parent == uploads and candidate.is_file()
