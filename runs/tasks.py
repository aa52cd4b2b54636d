from celery import shared_task

from runs import services


@shared_task(acks_late=True)
def build_export(export_id: str) -> None:
    services.export_build(export_id=export_id)


@shared_task
def sweep_vanished_runtimes() -> int:
    """Fails runtimes whose host stopped heartbeating (killed, machine gone)."""
    from runtime_host.sweep import runtimes_sweep_vanished

    return runtimes_sweep_vanished()
