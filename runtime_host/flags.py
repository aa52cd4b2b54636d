"""How bctrl starts Debian's Chromium on these machines (DESIGN.md, "Browser rules"):
one list for the runtime host, the tests and the benchmarks. Playwright adds `--headless`
itself when it launches with `headless=True`; a bare launch adds it to these."""

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
