"""The source injected into every page: the rrweb record bundle and the glue."""

import functools

from django.conf import settings

WORLD_NAME = "bctrl"
BINDING_NAME = "__bctrlRecord"

# When the run stops: the last event of each page (recordings.processing.END_TAG), flushed.
END_EXPRESSION = "globalThis.__bctrl ? (globalThis.__bctrl.end(), true) : false"
RUNNING_EXPRESSION = "!!(globalThis.__bctrl && globalThis.__bctrl.running())"


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
