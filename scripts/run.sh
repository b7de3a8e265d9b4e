#!/usr/bin/env bash
# Runs the product on the embedded default: servers, migrations, demo data, web server, worker, beat.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
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
start web $PY manage.py runserver --insecure --noreload "127.0.0.1:$PORT"
sleep 2
echo
echo "The portal runs at http://127.0.0.1:$PORT/ (logs in var/log/; 'make stop' stops everything)."
