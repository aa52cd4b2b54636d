import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bctrl_site.settings")

app = Celery("bctrl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# `celery -A bctrl_site beat` (or a worker with -B) runs these.
app.conf.beat_schedule = {
    "recordings-sweep-stuck": {
        "task": "recordings.tasks.sweep_stuck_recordings",
        "schedule": 60.0,
    },
    "handoffs-expire": {"task": "runs.tasks.expire_handoffs", "schedule": 5.0},
    "webhooks-send-due": {"task": "runs.webhooks.send_due_webhooks", "schedule": 5.0},
    "runtimes-sweep-vanished": {
        "task": "runtimes.tasks.sweep_vanished_runtimes",
        "schedule": 10.0,
    },
    "recordings-expire": {
        "task": "recordings.tasks.expire_recordings",
        "schedule": crontab(minute=7),
    },
}
