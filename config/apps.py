from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-wide pieces: health check, local outbox, demo bootstrap, schedules."""

    name = "config"
    verbose_name = "Paperboy"
