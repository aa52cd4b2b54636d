from django.apps import AppConfig


class RuntimesConfig(AppConfig):
    name = "runtimes"
    verbose_name = "Runtimes"

    def ready(self) -> None:
        # Imported once the models are loaded, so the tasks register under their names.
        from runtimes import tasks  # noqa: F401
