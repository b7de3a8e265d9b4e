"""The rule of CI's dependency audit (.ci/audit_dependencies.py), with a stand-in for pip-audit that
answers what a vulnerability service would: findings fail unless reviewed, an unreachable service is
said out loud and passes unless the audit is required."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

DJANGO_FINDING = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001"], "fix_versions": ["9.9.9"], "description": ""}
# What the stand-in prints for each --vulnerability-service: a JSON report, or None for a network error.
SCENARIOS = {
    "finding": {"pypi": [{"name": "django", "version": "5.2.19", "vulns": [DJANGO_FINDING]}]},
    "clean": {"pypi": [{"name": "django", "version": "5.2.19", "vulns": []}]},
    "half audited": {
        "pypi": [
            {"name": "django", "version": "5.2.19", "vulns": []},
            {"name": "redis", "skip_reason": "Dependency not found on PyPI"},
        ]
    },
    "unreachable": {"pypi": [{"name": "django", "skip_reason": "Dependency not found on PyPI"}], "osv": None},
    "only osv answers": {"pypi": None, "osv": [{"name": "django", "version": "5.2.19", "vulns": []}]},
}

STAND_IN = """
import json, os, sys
service = sys.argv[sys.argv.index("--vulnerability-service") + 1]
report = json.loads(os.environ["STAND_IN_REPORTS"]).get(service)
if report is None:
    sys.exit("requests.exceptions.ConnectionError: name or service not known")
print(json.dumps({"dependencies": report, "fixes": []}))
sys.exit(1 if any(d.get("vulns") for d in report) else 0)
"""


def run_audit(tmp_path, scenario: str, ignore: str = "", **env) -> subprocess.CompletedProcess:
    (tmp_path / "pip_audit").mkdir(exist_ok=True)
    (tmp_path / "pip_audit" / "__init__.py").write_text("")
    (tmp_path / "pip_audit" / "__main__.py").write_text(STAND_IN)
    (tmp_path / "ignore.txt").write_text(ignore)
    environment = {k: v for k, v in os.environ.items() if k != "PIP_AUDIT_REQUIRED"}
    environment.update(
        PYTHONPATH=str(tmp_path),
        PIP_AUDIT_IGNORE_FILE=str(tmp_path / "ignore.txt"),
        STAND_IN_REPORTS=json.dumps(SCENARIOS[scenario]),
        **env,
    )
    return subprocess.run(
        [sys.executable, ".ci/audit_dependencies.py"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_finding_fails_the_run_and_names_the_fix(tmp_path):
    result = run_audit(tmp_path, "finding")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DEPENDENCY AUDIT FAILED" in result.stdout
    assert "django 5.2.19: PYSEC-2099-1 (CVE-2099-0001) fixed in 9.9.9" in result.stdout


def test_a_reviewed_finding_is_ignored_by_id_or_alias_with_its_reason(tmp_path):
    result = run_audit(tmp_path, "finding", ignore="CVE-2099-0001  # only in the admin's XML export, which is off\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ignored PYSEC-2099-1 in django 5.2.19: only in the admin's XML export" in result.stdout


def test_an_ignore_entry_without_a_reason_is_refused(tmp_path):
    result = run_audit(tmp_path, "finding", ignore="PYSEC-2099-1\n")
    assert result.returncode != 0
    assert "has no reason" in result.stderr


def test_a_stale_ignore_entry_is_reported(tmp_path):
    result = run_audit(tmp_path, "clean", ignore="PYSEC-2000-1  # fixed long ago\n")
    assert result.returncode == 0
    assert "ignore entry PYSEC-2000-1 matched no finding" in result.stdout


def test_a_half_audit_fails(tmp_path):
    result = run_audit(tmp_path, "half audited")
    assert result.returncode == 1
    assert "not audited: Dependency not found on PyPI" in result.stdout


def test_the_second_service_is_used_when_the_first_does_not_answer(tmp_path):
    result = run_audit(tmp_path, "only osv answers")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "osv: 1 pinned packages audited, 0 findings not ignored" in result.stdout


@pytest.mark.parametrize("required, code", [(None, 0), ("true", 1)])
def test_no_service_is_said_out_loud_and_fails_only_when_required(tmp_path, required, code):
    result = run_audit(tmp_path, "unreachable", **({"PIP_AUDIT_REQUIRED": required} if required else {}))
    assert result.returncode == code, result.stdout + result.stderr
    assert "DEPENDENCY AUDIT NOT DONE" in result.stdout
    assert "pypi: no pinned package could be audited" in result.stdout
    assert "osv: pip-audit exited 1: requests.exceptions.ConnectionError" in result.stdout
