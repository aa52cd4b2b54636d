"""The sources injected into every page: the rrweb record bundle and its glue, and the
input capture that tells the host what each input touched (static/js/inputs.js)."""

import functools

from django.conf import settings

WORLD_NAME = "bctrl"
BINDING_NAME = "__bctrlRecord"
INPUT_BINDING_NAME = "__bctrlInput"

# When the run stops: the last event of each page (recordings.chunking.END_TAG), flushed.
END_EXPRESSION = "globalThis.__bctrl ? (globalThis.__bctrl.end(), true) : false"
RUNNING_EXPRESSION = "!!(globalThis.__bctrl && globalThis.__bctrl.running())"
INPUTS_PRESENT_EXPRESSION = "!!globalThis.__bctrlInputs"


def take_element_expression(mark: int) -> str:
    """The element an input record marked, handed to the host (or null once gone)."""
    return f"globalThis.__bctrlInputs ? globalThis.__bctrlInputs.take({int(mark)}) : null"


def set_enabled_expression(enabled: bool) -> str:
    flag = "true" if enabled else "false"
    return f"globalThis.__bctrl ? globalThis.__bctrl.setEnabled({flag}) : null"


@functools.cache
def recorder_source() -> str:
    bundle = (settings.BASE_DIR / "node_modules/@rrweb/record/umd/record.min.js").read_text()
    glue = (settings.BASE_DIR / "static/js/recorder.js").read_text()
    # The UMD bundle declares `var rrwebRecord`; wrapping both in one function keeps it
    # local to each evaluation, so a second injection does not clobber a running one.
    return f"(function(){{\n{bundle}\n;\n{glue}\n}})();"


@functools.cache
def input_source() -> str:
    return (settings.BASE_DIR / "static/js/inputs.js").read_text()
