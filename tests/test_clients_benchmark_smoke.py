"""The client benchmark runs end to end against a private redis-server and moto's server:
every row measured.

Timings are never asserted here; they live in benchmarks/README.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers import missing, redis_binary

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "clients.py"

ROWS = [
    "redis GET, private redis-server",
    "redis GET, A/A: plain vs plain (control)",
    "redis GET, copy of execute_command (control)",
    "redis GET, do-nothing wrapt wrapper (reference)",
    "redis.asyncio GET, private redis-server",
    "redis.asyncio GET, await-only wrapper (reference)",
    "redis GET, in process (round trip stubbed)",
    "SQLAlchemy connect + SELECT 1, SQLite file",
    "boto3 S3 HeadObject, moto server",
    "boto3 S3 HeadObject, in process (HTTP stubbed)",
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_short_run_measures_every_row() -> None:
    if redis_binary() is None:
        missing("redis-server is not installed")
    completed = _run("--rounds", "300")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    for row in ROWS:
        matching = [line for line in lines if line.startswith(f"| {row} ")]
        assert len(matching) == 1, f"row {row!r} missing from:\n{completed.stdout}"
        plain_us = float(matching[0].split("|")[2])
        assert plain_us > 0
    assert "In process, the redis instrumentation adds" in completed.stdout


def test_rejects_a_round_count_below_one() -> None:
    completed = _run("--rounds", "0")
    assert completed.returncode == 2
    assert "--rounds must be positive" in completed.stderr
