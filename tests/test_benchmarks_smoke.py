"""The breaker benchmark runs end to end: every row measured, no benchmark errors.

Timings are never asserted here; they live in benchmarks/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "breakers.py"

ROWS = [
    "bare call, sync",
    "bare call, async (await)",
    "raise+catch, one frame",
    "brownout closed, sync decorator",
    "brownout closed, async decorator",
    "brownout closed, acquire/on_success",
    "brownout closed, with-block",
    "brownout closed + OTel metrics, sync",
    "brownout rejection, forced open",
    "brownout rejection, tripped open",
    "circuitbreaker closed, sync",
    "circuitbreaker closed, async",
    "circuitbreaker rejection, open",
    "pybreaker closed, sync",
    "pybreaker rejection, open",
    "aiobreaker closed, async",
    "purgatory closed, sync",
    "purgatory closed, async",
    "naive wrapt+pybreaker+OTel, sync",
]


def test_quick_run_measures_every_row(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    table = completed.stdout
    assert "ERROR" not in table
    for row in ROWS:
        assert row in table, f"row {row!r} missing from:\n{table}"
    for section in ("Collect-time cost", "Memory retained by rejected calls", "Scaled budgets"):
        assert section in table

    report = json.loads(results.read_text())
    assert [row["name"] for row in report["rows"]] == ROWS
    assert all(row["error"] is None and row["ns_per_call"] > 0 for row in report["rows"])
    assert report["errors"] == []
    assert {item["name"] for item in report["memory"]} >= {
        "brownout forced open",
        "brownout tripped open",
    }


def test_rejects_bad_arguments() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--repeats", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert "--repeats must be positive" in completed.stderr
