#!/usr/bin/env bash
# Runs the product on the embedded default: servers, migrations, demo data, web server, worker, beat.
# scripts/run.sh: gunicorn in the background (make run). scripts/run.sh dev: Django's development server in
# the foreground, reloading on code changes (make dev); the worker and beat stop with it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MODE=${1:-run}
mkdir -p var/log
$PY scripts/services.py start
$PY manage.py migrate --noinput -v 0
$PY manage.py seed_demo
scripts/stop_processes.sh quiet
PORT=${PORT:-8000}
start() {  # name, command...
  local name=$1; shift
  nohup "$@" > "var/log/$name.log" 2>&1 &
  echo $! > "var/$name.pid"
}
start worker $PY -m celery -A portal worker --loglevel INFO --concurrency 2 -n "worker-$$@%h"
start beat $PY -m celery -A portal beat --loglevel INFO
if [[ $MODE == dev ]]; then
  trap scripts/stop_processes.sh EXIT
  echo "The portal runs at http://127.0.0.1:$PORT/ (Django's development server; Ctrl-C stops it, the worker and beat)."
  # --nostatic: static files go through WhiteNoise and the header middleware, as under gunicorn; with DEBUG
  # on, WhiteNoise reads them from the apps' folders, so no collectstatic is needed.
  DJANGO_DEBUG=${DJANGO_DEBUG:-true} $PY manage.py runserver --nostatic "127.0.0.1:$PORT"
  exit
fi
# WhiteNoise serves STATIC_ROOT, filled here (with compressed copies) before the web server starts.
$PY manage.py collectstatic --noinput -v 0
# Threads: a request mostly waits on PostgreSQL or the broker (the face work runs in the worker).
# Access and error log, and the e-mails of the console backend, go to var/log/web.log.
start web $PY -m gunicorn portal.wsgi --workers 2 --threads 4 --bind "127.0.0.1:$PORT" \
  --access-logfile - --graceful-timeout 10
# Wait until it answers (at most 30 s), or say why it stopped.
for _ in $(seq 60); do
  $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/accounts/login/', timeout=2)" \
    2>/dev/null && break
  kill -0 "$(cat var/web.pid)" 2>/dev/null || { echo "The web server stopped:" >&2; tail -20 var/log/web.log >&2; exit 1; }
  sleep 0.5
done
echo
echo "The portal runs at http://127.0.0.1:$PORT/ (gunicorn; logs in var/log/; 'make stop' stops everything)."
