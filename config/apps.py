from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class ConfigConfig(AppConfig):
    """Project-wide pieces: health check, local outbox, demo bootstrap, schedules, the Editors
    group."""

    name = "config"
    verbose_name = "Paperboy"

    def ready(self) -> None:
        from django.contrib import admin

        from config import lookups  # noqa: F401 - registers field__any_of
        from config.editors import editors_post_migrate

        admin.site.site_header = "Paperboy"
        admin.site.site_title = "Paperboy admin"
        admin.site.index_title = "Today's work"

        # After every migrate (and every test database flush) the Editors group is synced to
        # config/editors.py. Connected to auth's signal because this app has no models, and
        # Django sends post_migrate only for apps that have them; Group is auth's anyway.
        post_migrate.connect(
            editors_post_migrate,
            sender=apps.get_app_config("auth"),
            dispatch_uid="paperboy-editors-sync",
        )
