from django.apps import AppConfig


class RuntimeHostConfig(AppConfig):
    """The browser process: an app only for its `manage.py runtime_host` command."""

    name = "runtime_host"
    verbose_name = "Runtime host"
