"""``python -m brownout demo --profile short`` end to end: real processes, real faults
(a private redis-server when one is installed, the in-process stand-in otherwise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from examples.demo.phases import PHASES

REPOSITORY = Path(__file__).resolve().parents[2]


def test_short_demo_reaches_every_phase_level_and_cleans_up() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "brownout", "demo", "--profile", "short", "--plain"],
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for number, phase in enumerate(PHASES, 1):
        pattern = rf"✔ phase {number}/{len(PHASES)} {re.escape(phase.title)}: reached "
        assert re.search(pattern, output), f"phase {phase.title!r} not reached:\n{output}"
    assert f"all {len(PHASES)} phases reached their expected level" in output
    # Every process the demo started is gone: no redis-server or service left behind.
    leftovers = subprocess.run(
        ["pgrep", "-f", "examples.demo.serve"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout


def test_status_command_names_an_unreachable_service() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "brownout", "status", "http://127.0.0.1:1"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot read http://127.0.0.1:1/health" in result.stderr
    assert "Traceback" not in result.stderr
