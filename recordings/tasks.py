from celery import Task, shared_task

from recordings.processing import recording_process
from recordings.sweeps import recordings_expire, recordings_sweep_stuck
from recordings.video import recording_encode_videos


@shared_task(acks_late=True, bind=True)
def process_recording(self: Task, recording_id: str, force: bool = False) -> None:
    """Turns a stopped recording's batches into replay chunks (see recordings.processing).

    `force` takes a recording that another worker is processing right now (a recover).
    """
    recording_process(recording_id=recording_id, force=force, task_id=self.request.id or "")


@shared_task(acks_late=True)
def sweep_stuck_recordings() -> None:
    """Every minute: re-queue recordings whose processing was lost, fail those out of tries."""
    recordings_sweep_stuck()


@shared_task(acks_late=True)
def expire_recordings() -> None:
    """Hourly: expire recordings past retention and purge files of deleted ones."""
    recordings_expire()


@shared_task(acks_late=True)
def encode_recording_videos(recording_id: str) -> None:
    """Encodes the MP4 of each recorded tab of a ready recording (see recordings.video)."""
    recording_encode_videos(recording_id=recording_id)
