"""How bctrl starts Debian's Chromium on these machines (DESIGN.md, "Browser rules"):
one list for the runtime host, the tests and the benchmarks. Playwright adds `--headless`
itself when it launches with `headless=True`; a bare launch adds it to these."""

from typing import Any

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def option_args(options: dict[str, Any]) -> list[str]:
    """Chromium switches for a run's browser options (runs.api.serializers
    BrowserOptionsSerializer): every page of the browser starts with them, and a client's
    own emulation (a Playwright context's `viewport`, `locale`…) still takes precedence."""
    args = []
    viewport = options.get("viewport")
    if viewport:
        # The window; the host then fits each page's contents to the viewport exactly.
        args.append(f"--window-size={viewport['width']},{viewport['height']}")
    if options.get("userAgent"):
        args.append(f"--user-agent={options['userAgent']}")
    if options.get("locale"):
        language = options["locale"].split("-")[0]
        args += [f"--lang={options['locale']}", f"--accept-lang={options['locale']},{language}"]
    return args


def option_env(options: dict[str, Any]) -> dict[str, str]:
    """The environment that carries the options Chromium takes from it (the time zone)."""
    return {"TZ": options["timezone"]} if options.get("timezone") else {}
