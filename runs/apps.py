from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        # Imported once the models are loaded: the tasks register under their names
        # (runs.queue), and the HAR builder with the files exports.
        from runs import tasks  # noqa: F401
        from runs.exports import FileBuilder, builder_register
        from runs.exports.har import har_chunks, har_filename

        builder_register("har", FileBuilder(filename=har_filename, chunks=har_chunks))
