FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings

WORKDIR /app
COPY requirements-prod.lock .
RUN pip install --no-cache-dir -r requirements-prod.lock

COPY . .
# collectstatic needs settings that pass production validation; these throwaway values are
# only for this build step and never reach a running container.
RUN DEBUG=false SECRET_KEY=collectstatic-only ALLOWED_HOSTS=build SITE_URL=https://build \
    SENDER_POSTAL_ADDRESS=build \
    ANYMAIL_ESP=postmark ANYMAIL_API_KEY=build ANYMAIL_WEBHOOK_SECRET=build:build \
    python manage.py collectstatic --no-input -v 0

RUN useradd --system --uid 10001 paperboy && mkdir -p /app/var && chown paperboy /app/var
USER paperboy
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
