from django.apps import AppConfig


class NewsletterConfig(AppConfig):
    name = "newsletter"

    def ready(self) -> None:
        from newsletter.exports import delivery_history
        from newsletter.services import tracking  # noqa: F401 - connects the tracking receiver
        from subscriptions.exports import register_export_section

        register_export_section("deliveries", delivery_history)
