from typing import Any

from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "recordings"
    verbose_name = "Recordings"

    def ready(self) -> None:
        # Imported once the models are loaded: the tasks register under their names
        # (runs.queue); the trace and the replay file join the files exports' builders;
        # a run's end stops its recordings.
        from recordings import tasks  # noqa: F401
        from recordings.exports import replay_check, replay_file, replay_filename
        from recordings.services import recordings_stop_for_run
        from recordings.video import screencast_frames
        from runs.exports import FileBuilder, builder_register
        from runs.exports.trace import trace_chunks, trace_filename
        from runs.signals import run_ended

        builder_register(
            "trace",
            FileBuilder(
                filename=trace_filename,
                chunks=lambda run: trace_chunks(run, screencast_frames(run)),
            ),
        )
        builder_register(
            "replay",
            FileBuilder(
                filename=replay_filename,
                chunks=lambda run: replay_file(run).chunks(),
                check=replay_check,
            ),
        )

        def stop_recordings(sender: Any, run: Any, **kwargs: Any) -> None:
            recordings_stop_for_run(run=run)

        run_ended.connect(stop_recordings, weak=False, dispatch_uid="recordings.stop_on_run_end")
