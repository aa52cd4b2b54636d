from celery import shared_task

from runtimes.sweep import runtimes_sweep_vanished


@shared_task
def sweep_vanished_runtimes() -> int:
    """Fails runtimes whose host stopped heartbeating (killed, machine gone)."""
    return runtimes_sweep_vanished()
