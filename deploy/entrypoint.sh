#!/bin/sh
# The image's entry point. serve (default): gunicorn; worker: the job worker; migrate: apply migrations and exit;
# anything else runs as given (e.g. `flask --app app users create-admin ...`).
# Migrations before serving only when asked (MIGRATE_ON_START=1): with several gateways, prefer one `migrate` run.
set -eu
cd /app
case "${1:-serve}" in
  serve)
    if [ "${MIGRATE_ON_START:-0}" = "1" ]; then
      flask --app app db upgrade
    fi
    exec gunicorn -w "${GUNICORN_WORKERS:-2}" --threads "${GUNICORN_THREADS:-4}" -b "0.0.0.0:${PORT:-8000}" \
      'app:create_app()'
    ;;
  worker)
    exec flask --app app jobs worker --workers "${JOB_THREADS:-2}"
    ;;
  migrate)
    exec flask --app app db upgrade
    ;;
  *)
    exec "$@"
    ;;
esac
