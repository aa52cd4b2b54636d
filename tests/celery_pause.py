"""Loaded into the Celery worker of tests/test_celery_redelivery.py (`-I tests.celery_pause`).

It gives the test a moment inside a task to kill the worker's pool process in: the first
time a task passes a pause point, its process writes its pid to
`$BCTRL_TEST_PAUSE_DIR/<point>` and sleeps until it is killed; every later pass (the
redelivered task, in a new pool process) goes straight on. The points:

- `recording-second-target`: processing committed its first target (a chunk file and its
  row) and is about to process the target `page-2`;
- `export-zip-stored`: the export's ZIP is stored as an artifact, in the transaction that
  marks the export ready (which holds SQLite's write lock until the process is killed).
"""

import os
import time
from pathlib import Path
from typing import Any

from recordings import processing
from runs.exports import files as exports


def pause(point: str) -> None:
    folder = os.environ.get("BCTRL_TEST_PAUSE_DIR")
    if not folder:
        return
    try:
        descriptor = os.open(Path(folder) / point, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    os.write(descriptor, f"{os.getpid()}\n".encode())
    os.close(descriptor)
    time.sleep(120)


_process_target = processing._process_target
_artifact_store = exports.artifact_store


def pause_then_process_target(
    recording: Any, target: str, batches: Any, run_markers: Any
) -> processing.TargetOutput:
    if target == "page-2":
        pause("recording-second-target")
    return _process_target(recording, target, batches, run_markers)


def artifact_store_then_pause(**kwargs: Any) -> Any:
    artifact = _artifact_store(**kwargs)
    if kwargs.get("kind") == "export":
        pause("export-zip-stored")
    return artifact


processing._process_target = pause_then_process_target
exports.artifact_store = artifact_store_then_pause
