from celery import shared_task

from runs import services


@shared_task(acks_late=True)
def build_export(export_id: str) -> None:
    services.export_build(export_id=export_id)
