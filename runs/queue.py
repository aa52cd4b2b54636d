"""Queuing a Celery task by the name it is registered under.

A service queues its app's tasks after commit, and the tasks call the service: were the
service to import its tasks module, the two files would import each other. So services
name the task instead; every app's AppConfig.ready imports its tasks module, so each name
is registered in every process (web, runtime host, worker) before a service runs.
"""

from typing import Any

from celery import current_app


def queue(task_name: str, *args: Any) -> None:
    """Sends the task to the broker (runs it in place where Celery is eager)."""
    current_app.tasks[task_name].delay(*args)
