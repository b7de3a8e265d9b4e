"""CI's dependency audit: pip-audit over the lock requirements.txt (every package, direct and indirect,
pinned with its hashes; made by make lock from requirements.in), with a reviewed ignore list.

The rule, printed on every run:
- A vulnerability service answers (PyPI's JSON API, else OSV): a finding that is not in
  .ci/pip-audit-ignore.txt fails the run, and so does a pinned package that the service could not
  audit while it audited others (half an audit is not an audit).
- No service answers from this machine: the run prints "DEPENDENCY AUDIT NOT DONE" with each
  service's answer, and passes, since a machine without the service cannot tell; with
  PIP_AUDIT_REQUIRED=true it fails instead (for a CI that has the network).

Run with the project's interpreter: .venv/bin/python .ci/audit_dependencies.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"
# The tests of this script point it at an ignore list of their own.
IGNORE_FILE = Path(os.environ.get("PIP_AUDIT_IGNORE_FILE", ROOT / ".ci" / "pip-audit-ignore.txt"))
SERVICES = ("pypi", "osv")


def ignore_list() -> dict[str, str]:
    """Vulnerability id → the reviewed reason it does not apply; an entry without a reason is refused."""
    entries = {}
    for number, line in enumerate(IGNORE_FILE.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        vulnerability, _, reason = line.partition("#")
        if not reason.strip():
            sys.exit(
                f"{IGNORE_FILE.name}:{number}: {vulnerability.strip()} has no reason: "
                "write 'ID  # why it does not apply'"
            )
        entries[vulnerability.strip()] = reason.strip()
    return entries


def audit(service: str) -> tuple[list[dict] | None, str]:
    """pip-audit's dependencies (audited or skipped) with this service, or None and what went wrong."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        str(REQUIREMENTS),
        "--no-deps",
        "--disable-pip",
        "--vulnerability-service",
        service,
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        "30",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    try:
        dependencies = json.loads(result.stdout)["dependencies"]
    except (ValueError, KeyError):
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        return None, f"pip-audit exited {result.returncode}: {errors[-1] if errors else 'no output'}"
    if all("skip_reason" in d for d in dependencies):
        reason = dependencies[0]["skip_reason"] if dependencies else "no dependency listed"
        return None, f"no pinned package could be audited ({len(dependencies)} skipped, e.g. {reason!r})"
    return dependencies, ""


def main() -> int:
    ignored = ignore_list()
    required = os.environ.get("PIP_AUDIT_REQUIRED", "").lower() in ("1", "true", "yes", "on")
    print(f"Dependency audit: pip-audit over {REQUIREMENTS.name}, {len(ignored)} reviewed ignore entries")
    failures = []
    for service in SERVICES:
        dependencies, problem = audit(service)
        if dependencies is None:
            failures.append(f"  {service}: {problem}")
            continue
        skipped = [d for d in dependencies if "skip_reason" in d]
        findings, matched = [], set()
        for dependency in dependencies:
            for vulnerability in dependency.get("vulns", []):
                ids = {vulnerability["id"], *vulnerability.get("aliases", [])}
                if ids & ignored.keys():
                    matched |= ids & ignored.keys()
                    reason = ignored[sorted(ids & ignored.keys())[0]]
                    print(f"  ignored {vulnerability['id']} in {dependency['name']} {dependency['version']}: {reason}")
                else:
                    fixes = ", ".join(vulnerability.get("fix_versions", [])) or "none yet"
                    findings.append(
                        f"  {dependency['name']} {dependency['version']}: {vulnerability['id']} "
                        f"({', '.join(vulnerability.get('aliases', []))}) fixed in {fixes}"
                    )
        for stale in sorted(ignored.keys() - matched):
            print(f"  note: ignore entry {stale} matched no finding; remove it once no pinned version has it")
        audited = len(dependencies) - len(skipped)
        print(
            f"  {service}: {audited} pinned packages audited, {len(findings)} findings not ignored, "
            f"{len(skipped)} not audited"
        )
        if findings or skipped:
            print(
                "DEPENDENCY AUDIT FAILED",
                *findings,
                *(f"  not audited: {d['skip_reason']}" for d in skipped),
                "Upgrade the pin, or add a reviewed entry with its reason to .ci/pip-audit-ignore.txt",
                sep="\n",
            )
            return 1
        print("Dependency audit passed.")
        return 0
    print("DEPENDENCY AUDIT NOT DONE: no vulnerability service answered from this machine.", *failures, sep="\n")
    if required:
        print("PIP_AUDIT_REQUIRED is set: failing.")
        return 1
    print("Passing without an audit (set PIP_AUDIT_REQUIRED=true where the network reaches a service).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
