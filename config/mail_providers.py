"""The settings each mail provider needs, read from the environment, and the start-up check.

It refuses only what cannot work, naming the variable to set: a provider with no key, Mailjet
without its secret, Amazon SES without boto3 (Anymail's SES backend is built on it), SMTP
without a host. Everything else a provider may want (a region, an endpoint) has a default.
"""

from __future__ import annotations

import importlib.util

from django.core.exceptions import ImproperlyConfigured

from config.env import env_int, env_str, env_url

# Postmark goes through its batch backend (merge fields filled in the bodies, see
# newsletter/backends.py); Mailgun and SendGrid through Anymail's, a refused address failing
# alone and Mailgun posting fewer bytes (newsletter/mailgun.py, newsletter/sendgrid.py); SMTP
# through Django's own backend wrapped so it answers recipient by recipient as the Anymail ones
# do (newsletter/smtp.py); Amazon SES through Anymail's, one boto3 client per process and
# connection failures read as "not taken" or "unknown" (newsletter/amazon_ses.py); Resend's
# filled copies in calls of up to 100 (newsletter/resend.py).
BACKENDS = {
    "postmark": "newsletter.backends.PostmarkBatchEmailBackend",
    "mailgun": "newsletter.mailgun.MailgunLeanEmailBackend",
    "sendgrid": "newsletter.sendgrid.SendGridEmailBackend",
    "resend": "newsletter.resend.ResendBatchEmailBackend",
    "smtp": "newsletter.smtp.SmtpEmailBackend",
    "amazon_ses": "newsletter.amazon_ses.AmazonSesEmailBackend",
}


def provider_settings(esp: str, keys: dict[str, str | None], anymail: dict) -> tuple[str, str]:
    """Fill `anymail` with the provider's settings; (EMAIL_BACKEND, ANYMAIL_API_URL)."""
    backend = BACKENDS.get(esp, f"anymail.backends.{esp}.EmailBackend")
    key_setting = keys[esp]
    if key_setting:
        anymail[key_setting] = env_str("ANYMAIL_API_KEY", default="")
        if not anymail[key_setting]:
            raise ImproperlyConfigured(f"ANYMAIL_API_KEY is required for {esp}")
    if esp == "mailjet":
        anymail["MAILJET_SECRET_KEY"] = env_str("ANYMAIL_API_SECRET", default="")
        if not anymail["MAILJET_SECRET_KEY"]:
            raise ImproperlyConfigured("ANYMAIL_API_SECRET is required for mailjet")
    # Points the backend at another endpoint (a regional one, or the local fake provider).
    api_url = env_url("ANYMAIL_API_URL", default="", schemes={"http", "https"})
    if esp == "amazon_ses":
        _amazon_ses_settings(anymail, api_url)
    elif api_url and esp != "smtp":
        anymail[f"{esp.upper()}_API_URL"] = api_url
    return backend, api_url


def _amazon_ses_settings(anymail: dict, api_url: str) -> None:
    if importlib.util.find_spec("boto3") is None:
        raise ImproperlyConfigured(
            "ANYMAIL_ESP=amazon_ses needs boto3: pip install 'django-anymail[amazon-ses]'"
        )
    # boto3 finds the credentials itself (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile,
    # an instance role); the region has no safe default, so it is asked for.
    region = env_str("AWS_REGION", default="") or env_str("AWS_DEFAULT_REGION", default="")
    if not region:
        raise ImproperlyConfigured("AWS_REGION is required for amazon_ses (e.g. eu-west-1)")
    # One attempt per call: boto3 would otherwise retry a 429 or 5xx itself (3 attempts in its
    # standard mode), outside the shared send rate's turns and on top of Paperboy's own retry
    # of the claim (newsletter/services/sending.py), which owns retrying.
    params: dict[str, object] = {
        "region_name": region,
        "config": {"retries": {"total_max_attempts": 1, "mode": "standard"}},
    }
    if api_url:
        params["endpoint_url"] = api_url
    anymail["AMAZON_SES_CLIENT_PARAMS"] = params
    configuration_set = env_str("AMAZON_SES_CONFIGURATION_SET", default="")
    if configuration_set:
        anymail["AMAZON_SES_CONFIGURATION_SET_NAME"] = configuration_set


def smtp_settings() -> tuple[str, int, str, str]:
    """(EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD) for ANYMAIL_ESP=smtp."""
    host = env_str("EMAIL_HOST", default="")
    if not host:
        raise ImproperlyConfigured("EMAIL_HOST is required for smtp (your mail server)")
    port = env_int("EMAIL_PORT", default=587, minimum=1)
    return (
        host,
        port,
        env_str("EMAIL_HOST_USER", default=""),
        env_str("EMAIL_HOST_PASSWORD", default=""),
    )
