#!/usr/bin/env bash
# Stops the web server, worker and beat started by scripts/run.sh. var/web.pid is gunicorn's master: on TERM it
# stops its workers once their requests are answered (--graceful-timeout 10, within the wait below).
cd "$(dirname "$0")/.."
for name in web beat worker; do
  pidfile=var/$name.pid
  [[ -f $pidfile ]] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    [[ ${1:-} == quiet ]] || echo "stopped $name"
  fi
  rm -f "$pidfile"
done
