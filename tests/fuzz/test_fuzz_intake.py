"""The intake fuzzing harness, run for a bounded time: no crash, hang or out-of-memory.

FUZZ_SECONDS sets the fuzzing time (default 60, at most 120 here; `make fuzz` runs it longer).
The harness starts from a fresh corpus of generated seeds, so each run explores anew.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase

HARNESS = Path(__file__).with_name("fuzz_intake.py")
MAX_SECONDS = 120
STARTUP_SECONDS = 180  # imports, the face models, the seeds: far below this even on a busy machine


# The fuzzing process's address space, face models loaded (about 0.7 GB of it): an input that needs more fails
# its allocation (MemoryError), which the harness lets through as a finding.
ADDRESS_SPACE_BYTES = 2 * 1024**3


def cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


def fuzz_seconds() -> int:
    return max(1, min(int(os.environ.get("FUZZ_SECONDS", "60")), MAX_SECONDS))


class IntakeFuzzTests(SimpleTestCase):
    def test_the_intake_survives_fuzzing(self):
        workdir = Path(tempfile.mkdtemp(prefix="fuzz-intake-"))
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        corpus, artifacts = workdir / "corpus", workdir / "artifacts"
        corpus.mkdir()
        artifacts.mkdir()
        seconds = fuzz_seconds()
        run = subprocess.run(
            [
                sys.executable,
                str(HARNESS),
                f"-max_total_time={seconds}",
                "-timeout=30",
                # libFuzzer's RSS limit reads the peak resident size, which a child inherits from the process
                # that started it (getrusage survives fork and exec: a pytest run grown past 1 GiB made every
                # input "out of memory"); the memory is capped in the child itself instead (cap_memory).
                "-rss_limit_mb=0",
                f"-artifact_prefix={artifacts}/",
                "-print_final_stats=1",
                str(corpus),
            ],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=seconds + STARTUP_SECONDS,
            preexec_fn=cap_memory,
        )
        findings = sorted(artifacts.iterdir())
        report = run.stderr[-6000:]
        if findings:
            kept = settings.BASE_DIR / "var" / "fuzz" / "findings"
            kept.mkdir(parents=True, exist_ok=True)
            for finding in findings:
                shutil.copy(finding, kept / finding.name)
            self.fail(
                f"crash, timeout or out-of-memory inputs, kept in {kept}: "
                f"{', '.join(f.name for f in findings)}; replay one with "
                f"`.venv/bin/python {HARNESS.relative_to(settings.BASE_DIR)} {kept}/NAME`\n{report}"
            )
        self.assertEqual(run.returncode, 0, report)
        stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", run.stderr))
        executions, per_second = int(stats["number_of_executed_units"]), int(stats["average_exec_per_sec"])
        seeds = len(list(corpus.iterdir()))
        # A harness that refused everything early, or never got past its seeds, would also "pass".
        self.assertGreater(executions, seeds)
        self.assertIn("DONE", run.stderr)
        print(
            f"\nfuzzed the intake for {seconds} s: {executions} executions, {per_second}/s, "
            f"peak RSS {stats['peak_rss_mb']} MB, corpus {seeds} inputs, no findings"
        )
