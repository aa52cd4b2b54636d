from django.apps import AppConfig


class RuntimesConfig(AppConfig):
    name = "runtimes"
    verbose_name = "Runtimes"
