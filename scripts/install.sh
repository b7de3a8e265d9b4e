#!/usr/bin/env bash
# Installs everything the portal needs into .venv (and Debian's chromium for browser tests).
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [[ ! -x .venv/bin/python ]]; then
  echo "Creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "Installing Python packages (the lock requirements.txt: every package pinned, every file hash-checked)"
  # pip first, itself from the lock with its hashes: the venv's own pip may be too old for some wheels.
  pip_entry=$(mktemp)
  trap 'rm -f "$pip_entry"' EXIT
  awk '/^pip==/ {entry = 1} entry {print} entry && !/\\$/ {exit}' requirements.txt > "$pip_entry"
  .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r "$pip_entry"
  # --no-deps: the lock already holds every dependency, so pip resolves nothing of its own, and pip check
  # fails the install if the lock ever misses one.
  .venv/bin/python -m pip install --quiet --progress-bar on --require-hashes --no-deps -r requirements.txt
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi

# Debian's chromium drives the real-browser tests (Playwright's own browser download does not work
# offline); poppler-utils renders PDF reports to images.
if ! command -v chromium >/dev/null || ! command -v pdftoppm >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "Installing Debian packages: chromium poppler-utils"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null
  else
    echo "Note: install Debian's chromium and poppler-utils (sudo apt-get install chromium poppler-utils) for the browser tests." >&2
  fi
fi
