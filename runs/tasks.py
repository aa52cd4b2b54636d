from celery import shared_task

from runs import services
from runs.exports.files import export_build
from runs.webhooks import deliver_webhook, send_due_webhooks

# The webhook tasks live with their rules; named here so the worker registers them.
__all__ = ["deliver_webhook", "send_due_webhooks"]


@shared_task(acks_late=True)
def build_export(export_id: str) -> None:
    export_build(export_id=export_id)


@shared_task
def expire_handoffs() -> int:
    """Ends handoffs whose time is up, so their waiters and webhook hear of it."""
    return services.handoffs_expire()
