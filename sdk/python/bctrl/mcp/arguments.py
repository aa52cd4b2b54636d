"""The arguments bctrl's MCP tools take, typed so that the SDK checks them (and answers a
wrong one) before any call of the API."""

from typing import Annotated, Literal

from mcp.types import ToolAnnotations
from pydantic import Field

RunId = Annotated[
    str,
    Field(pattern=r"^run_[0-9a-z]{1,64}$", description="A run id (run_…), as start_browser gave."),
]
HandoffId = Annotated[
    str, Field(pattern=r"^hof_[0-9a-z]{1,64}$", description="A handoff id (hof_…).")
]
ExpiresIn = Annotated[
    int | None,
    Field(ge=60, le=86_400, description="How long the link lives, in seconds (default: 1 h)."),
]
WaitSeconds = Annotated[
    int,
    Field(
        ge=0,
        le=300,
        description="How long to wait for the person, in seconds, before answering that "
        "the handoff is still open (then call wait_for_handoff).",
    ),
]
RunStatus = Literal["running", "completed", "failed"]
Severity = Literal["info", "warning", "error"]

# The largest page of activity items, events or runs one call answers.
MAX_PAGE = 500

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
