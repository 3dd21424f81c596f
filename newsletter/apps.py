from django.apps import AppConfig


class NewsletterConfig(AppConfig):
    name = "newsletter"

    def ready(self) -> None:
        from newsletter import webhooks  # noqa: F401 - connects the tracking receiver
        from newsletter.exports import delivery_history
        from subscriptions.exports import register_export_section

        register_export_section("deliveries", delivery_history)
