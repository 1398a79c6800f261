"""Middleware overhead through a real server: uvicorn serving the 50-route Starlette app of
``benchmarks/middleware.py`` bare, behind BrownoutMiddleware at OPTIMAL, and at EMERGENCY
(every request rejected with 503), loaded by ``wrk`` over loopback.

Run from the repository root::

    .venv/bin/python benchmarks/middleware_server.py              # 3 apps x 10 s
    .venv/bin/python benchmarks/middleware_server.py --quick      # 3 apps x 3 s
    .venv/bin/python benchmarks/middleware_server.py --rounds 3   # interleaved, medians

Setup installs Debian's ``wrk`` when it is missing (needs root and apt-get). The server
(one uvicorn worker, h11 or httptools, whichever is installed) runs pinned to CPU 1 and wrk
to CPU 0 when ``taskset`` exists, so the two cores of a small machine don't fight. Reported
per app: requests/s from wrk, and the server's own CPU time per request (utime + stime of
the uvicorn process from /proc over the wrk run), each with its ratio to the bare app
measured in the same run. A report: it fails only on errors, never on a budget.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = "/target/7"
CONNECTIONS = 16
SERVER_CPU, WRK_CPU = 1, 0
APPS = {
    "bare": ("bare Starlette, 50 routes", 200),
    "optimal": ("+ BrownoutMiddleware, OPTIMAL", 200),
    "emergency": ("+ BrownoutMiddleware, EMERGENCY (503)", 503),
}
"""BENCH_APP value -> (row label, the status every request must get)."""


def app() -> Any:
    """uvicorn ``--factory`` entry: the app named by the BENCH_APP environment variable."""
    from benchmarks.middleware import build
    from brownout.health.snapshot import Snapshot, SnapshotBoard
    from brownout.levels import Level

    kind = os.environ.get("BENCH_APP", "bare")
    if kind not in APPS:
        raise SystemExit(f"BENCH_APP={kind!r}: expected one of {', '.join(APPS)}")
    board = SnapshotBoard()
    if kind == "emergency":
        board.publish(Snapshot(level=Level.EMERGENCY, policy=board.matrix.policy(Level.EMERGENCY)))
    return build("bare" if kind == "bare" else "brownout", board)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("wrk is not installed and apt-get is not usable here (root needed)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        print(f"wrk is not installed: running {' '.join(command)}", flush=True)
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(command)} failed ({done.returncode}); install wrk by hand:\n"
                + (done.stderr or done.stdout).strip()
            )
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("apt-get installed wrk but it is not on PATH")
    return found


def http_implementation() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command


def cpu_seconds(pid: int) -> float:
    # The command name in field 2 may hold spaces: split after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(kind: str, http: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A uvicorn subprocess serving ``kind`` on a free loopback port, answering ``TARGET``
    with the expected status; stopped on the way out whatever happens."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "benchmarks.middleware_server:app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--http", http,
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_APP": kind, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(pinned(SERVER_CPU, command), cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}{TARGET}"
        expect_status(server, url, APPS[kind][1])
        yield server, url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def expect_status(server: subprocess.Popen[bytes], url: str, status: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"uvicorn exited with {server.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                got = response.status
        except urllib.error.HTTPError as error:
            got = error.code
        except OSError:
            time.sleep(0.05)  # not listening yet
            continue
        if got != status:
            raise SystemExit(f"{url} answered {got}, expected {status}")
        return
    raise SystemExit(f"uvicorn did not answer {url} within 30 s")


@dataclass(frozen=True)
class WrkRun:
    requests: int
    per_second: float
    rejected: int
    """Responses wrk counts as "Non-2xx or 3xx"."""
    socket_errors: str | None


def parse_wrk(output: str) -> WrkRun:
    requests = re.search(r"(\d+) requests in ", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if requests is None or rate is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    rejected = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.+)", output)
    return WrkRun(
        requests=int(requests.group(1)),
        per_second=float(rate.group(1)),
        rejected=int(rejected.group(1)) if rejected else 0,
        socket_errors=errors.group(1).strip() if errors else None,
    )


def load(wrk: str, url: str, seconds: int) -> WrkRun:
    command = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", url]
    done = subprocess.run(
        pinned(WRK_CPU, command), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


@dataclass(frozen=True)
class Row:
    per_second: float
    cpu_us_per_request: float
    cpu_busy: float
    """Share of the run the server spent on CPU (1.0: one core saturated)."""


def measure(kind: str, wrk: str, seconds: int, http: str) -> Row:
    with serving(kind, http) as (server, url):
        load(wrk, url, 1)  # warm-up: imports, route caches, connection setup
        before = cpu_seconds(server.pid)
        run = load(wrk, url, seconds)
        used = cpu_seconds(server.pid) - before
    expected_rejected = run.requests if APPS[kind][1] >= 400 else 0
    if run.rejected != expected_rejected:
        raise SystemExit(
            f"{kind}: {run.rejected} of {run.requests} responses were not 2xx/3xx, "
            f"expected {expected_rejected}"
        )
    if run.socket_errors:
        print(f"note: {kind}: wrk socket errors: {run.socket_errors}", flush=True)
    return Row(run.per_second, used / run.requests * 1e6, used / seconds)


def median_row(rows: list[Row]) -> Row:
    return Row(
        per_second=statistics.median(row.per_second for row in rows),
        cpu_us_per_request=statistics.median(row.cpu_us_per_request for row in rows),
        cpu_busy=statistics.median(row.cpu_busy for row in rows),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians)")
    args = parser.parse_args()
    if args.duration < 1 or args.rounds < 1:
        parser.error("--duration and --rounds must be at least 1")
    seconds = 3 if args.quick else args.duration

    wrk = ensure_wrk()
    http = http_implementation()
    import uvicorn

    placement = (
        f"server on CPU {SERVER_CPU}, wrk on CPU {WRK_CPU}"
        if shutil.which("taskset")
        else "no taskset: server and wrk unpinned"
    )
    one, five, fifteen = os.getloadavg()
    print(
        f"uvicorn {uvicorn.__version__} (http {http}, 1 worker), Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, {placement}\n"
        f"wrk -t1 -c{CONNECTIONS} -d{seconds}s GET {TARGET}, {args.rounds} round(s); "
        f"load average before: {one:.2f} {five:.2f} {fifteen:.2f}",
        flush=True,
    )
    rounds: dict[str, list[Row]] = {kind: [] for kind in APPS}
    for _ in range(args.rounds):
        for kind, rows in rounds.items():
            rows.append(measure(kind, wrk, seconds, http))
    median = {kind: median_row(rows) for kind, rows in rounds.items()}
    base = median["bare"]
    print(f"{'app':38} {'req/s':>7} {'ratio':>6} {'CPU µs/req':>11} {'ratio':>6} {'busy':>5}")
    for kind, row in median.items():
        print(
            f"{APPS[kind][0]:38} {row.per_second:7.0f} {row.per_second / base.per_second:6.2f} "
            f"{row.cpu_us_per_request:11.1f} "
            f"{row.cpu_us_per_request / base.cpu_us_per_request:6.2f} {row.cpu_busy:5.0%}"
        )
    if args.rounds > 1:
        pairs = zip(rounds["optimal"], rounds["bare"], strict=True)
        spread = [optimal.cpu_us_per_request / bare.cpu_us_per_request for optimal, bare in pairs]
        print("OPTIMAL / bare CPU per request by round: " + ", ".join(f"{s:.2f}" for s in spread))
    one, five, fifteen = os.getloadavg()
    print(f"load average after: {one:.2f} {five:.2f} {fifteen:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
