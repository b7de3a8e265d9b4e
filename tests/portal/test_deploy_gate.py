"""Production settings pass Django's deployment checklist, and refuse unsafe values."""

import os
import secrets
import subprocess
import sys

from django.conf import settings


def run_check(**env) -> subprocess.CompletedProcess:
    test_only = ("OTP_PREENROL", "DJANGO_DEBUG", "SEARCH_DEFAULT_PURPOSE", "SEARCH_DEFAULT_JUSTIFICATION")
    environment = {k: v for k, v in os.environ.items() if k not in test_only}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "PORTAL_PRODUCTION": "true",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
    "DJANGO_ALLOWED_HOSTS": "faces.example.org",
}


def test_production_settings_pass_check_deploy():
    result = run_check(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = dict(PRODUCTION)
    env.pop("DJANGO_SECRET_KEY")
    result = run_check(**env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_pre_enrolled_second_factors():
    result = run_check(**PRODUCTION, OTP_PREENROL="true")
    assert result.returncode != 0
    assert "OTP_PREENROL must be off in production" in result.stderr


def test_development_settings_fail_the_checklist():
    result = run_check()
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr  # no HSTS outside production


def test_production_refuses_default_search_purposes():
    result = run_check(**PRODUCTION, SEARCH_DEFAULT_PURPOSE="Robbery")
    assert result.returncode != 0
    assert "for tests only" in result.stderr
