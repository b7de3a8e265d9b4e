"""Importing the project starts no server: in a fresh interpreter whose embedded-server start-up raises, Django is
set up and every module of accounts, portal and search is imported (migrations and management commands included).
Only the process entry points start the servers; the WSGI module, one of them, is the control."""

import json
import os
import subprocess
import sys

from django.conf import settings

PROBE = r"""
import importlib.util, json, pkgutil, sys

# portal/embedded.py is loaded on its own and its start-up replaced before the portal package is imported,
# so that whatever imports it later (portal/__init__, the Celery app, the settings) finds the refusing one.
spec = importlib.util.spec_from_file_location("portal.embedded", "portal/embedded.py")
embedded = importlib.util.module_from_spec(spec)
sys.modules["portal.embedded"] = embedded
spec.loader.exec_module(embedded)

calls = []


class ServerStartRefused(RuntimeError):
    pass


def refuse(name):
    def refused(*args, **kwargs):
        calls.append(name)
        raise ServerStartRefused(f"{name} was called")

    return refused


for name in ("ensure_services", "_start_postgres", "_start_valkey", "_pgserver", "tune_postgres"):
    setattr(embedded, name, refuse(name))

import django

django.setup()

imported, failed = [], {}


def record_failure(name):
    failed[name] = repr(sys.exc_info()[1])


for package_name in ("accounts", "portal", "search"):
    package = importlib.import_module(package_name)
    imported.append(package_name)
    for module in pkgutil.walk_packages(package.__path__, prefix=package_name + ".", onerror=record_failure):
        if module.name == "portal.wsgi":
            continue  # an entry point: it starts the servers, by design (checked below)
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which names the module
            failed[module.name] = repr(exc)
        else:
            imported.append(module.name)

calls_on_import = list(calls)
try:
    importlib.import_module("portal.wsgi")
    wsgi_outcome = "imported"
except ServerStartRefused as exc:
    wsgi_outcome = str(exc)
print(json.dumps({"imported": imported, "failed": failed, "calls_on_import": calls_on_import,
                  "wsgi": wsgi_outcome}))
"""


def run_probe() -> dict:
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_every_module_starts_no_server():
    outcome = run_probe()
    assert outcome["failed"] == {}
    assert outcome["calls_on_import"] == []
    for module in (
        "portal",
        "portal.celery",
        "portal.tasks",
        "portal.publish",
        "portal.reports.layout",
        "portal.reports.render",
        "portal.audit",
        "portal.migrations.0001_initial",
        "portal.management.commands.seed_demo",
        "accounts.views",
        "accounts.migrations.0001_initial",
        "accounts.management.commands.create_agency",
        "search.tasks",
        "search.views",
        "search.management.commands.search_photo",
        "search.migrations.0001_initial",
    ):
        assert module in outcome["imported"], module
    # The control: an entry point does start the servers, so the refusal above would have been seen.
    assert outcome["wsgi"] == "ensure_services was called"
