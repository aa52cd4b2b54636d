"""The runtime host: runs Chromium for runtimes and records what happens in it."""
