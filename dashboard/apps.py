from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        # Imported once the apps are loaded (the module uses the auth models), for its
        # signal receivers.
        from dashboard import signin  # noqa: F401
