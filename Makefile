PY := .venv/bin/python
.DEFAULT_GOAL := help

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install:  ## Install everything into .venv (and Debian's chromium for browser tests)
	@scripts/install.sh

# The lock is for Python 3.11 on linux x86_64. Existing pins are kept unless ARGS says otherwise
# (ARGS="--upgrade-package NAME", or ARGS=--upgrade for everything).
lock:  ## Regenerate the hashed lock requirements.txt from requirements.in (needs the package index)
	@$(PY) -m uv pip compile requirements.in --output-file requirements.txt --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-config \
		--custom-compile-command "make lock" --quiet $(ARGS)

services: install  ## Start the embedded PostgreSQL + pgvector and Valkey (no-op if running or if URLs are set)
	@$(PY) scripts/services.py start

stop:  ## Stop the web server, worker, beat and the embedded servers
	@scripts/stop_processes.sh
	@$(PY) scripts/services.py stop

status:  ## Show the embedded servers
	@$(PY) scripts/services.py status

migrate: services  ## Apply database migrations
	@$(PY) manage.py migrate --noinput

run: install  ## Install, start services, migrate, seed the demo, start web server + worker + beat
	@scripts/run.sh

dev: install  ## Like run, but Django's development server in the foreground, reloading on code changes
	@scripts/run.sh dev

lint: install  ## ruff (lint and format check) and import-linter's layer contracts
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/lint-imports --no-cache

test: services  ## Run the whole test suite (real PostgreSQL, broker, worker and browser)
	@$(PY) -m pytest

bench: services  ## Per-stage pipeline timings and search latency over a padded gallery
	@$(PY) -m scripts.bench_pipeline

bench-engines: services  ## The two face engines side by side on the shared photos
	@$(PY) -m scripts.bench_engines

calibration-data: services  ## Recompute search/data/labelled_pairs.json (the labelled impostor and mate distances) from the shared photos
	@$(PY) -m scripts.calibration_data

bench-answers: services  ## Open-set answers on the shared photos: strangers, mates, DET curve, quality curve (≈ 4 min)
	@$(PY) -m scripts.bench_answers

N ?= 100000
ENGINE ?= dlib
bench-scale: install  ## Search over N faces vs exact search and a brute-force peer (N=1000000 ENGINE=sface)
	@$(PY) -m scripts.bench_scale --n $(N) --engine $(ENGINE) $(ARGS)

bench-latency: services  ## Upload to stored result (real worker) and to candidates visible (browser), over a kept bench-scale gallery (ARGS=--small: the shared photos)
	@$(PY) -m scripts.bench_latency $(ARGS)

bench-enrol: services  ## Batch enrolment faces/s (enroll_gallery --workers 2) with its stages, tombstones and watch-list on (ARGS="--copies 6")
	@$(PY) -m scripts.bench_enrol $(ARGS)

load: services  ## Load test on loopback: 2 agencies x 10 officers, baseline then one bursting (about 5 min; never in CI)
	@$(PY) -m loadtest.run

DRILL_SEARCHES ?= 100
drill-cluster: services  ## Multi-host drill: web, 2 worker hosts, beat, a replica, SeaweedFS; a worker and the replica killed (DRILL_SEARCHES=100, ≈ 3 min)
	@CLUSTER_DRILL_SEARCHES=$(DRILL_SEARCHES) $(PY) -m pytest tests/e2e/test_cluster_drill.py -q -s -p no:cacheprovider $(ARGS)

FUZZ_SECONDS ?= 600
fuzz: install  ## Fuzz the photo intake (decode, checks, face detection) for FUZZ_SECONDS (600); findings in var/fuzz/
	@mkdir -p var/fuzz/corpus var/fuzz/findings
	@$(PY) tests/fuzz/fuzz_intake.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=var/fuzz/findings/ \
		-print_final_stats=1 var/fuzz/corpus

.PHONY: help install lock dev services stop status migrate run lint test bench bench-engines bench-answers calibration-data bench-scale bench-latency bench-enrol load fuzz drill-cluster
