"""Middleware overhead in-process: a bare Starlette app with 50 routes vs the same app
behind BrownoutMiddleware, and the cost of a rejection.

Run from the repository root::

    .venv/bin/python benchmarks/middleware.py            # about half a minute
    .venv/bin/python benchmarks/middleware.py --quick    # smoke run

Each row calls the ASGI app directly with a synthetic scope, ``receive`` and ``send`` (no
network, no server) in a loop on one event loop, and reports the best (minimum) ns per
request over interleaved samples with the garbage collector off. "Added" is that minus the
bare app's row measured in the same run. The budget (DESIGN.md: 1 us added per request on
the reference machine) is printed as written and scaled by this machine's slowdown against
DESIGN.md's reference machine, measured in the same run the way benchmarks/breakers.py
does: circuitbreaker's added ns per call here over the +474 ns DESIGN.md saw. A report:
budgets never fail it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from brownout.health.snapshot import Snapshot, SnapshotBoard
from brownout.levels import Level
from brownout.middleware import BrownoutMiddleware, features

ROUTES = 50
BUDGET_NS = 1_000
DESIGN_CIRCUITBREAKER_ADDED_NS = 474.0


def slowdown() -> float:
    """This machine against DESIGN.md's: circuitbreaker's added ns per closed sync call."""
    from circuitbreaker import CircuitBreaker

    def work() -> int:
        return 1

    guarded = CircuitBreaker(failure_threshold=5, recovery_timeout=30)(work)

    def best(call: Callable[[], object]) -> float:
        runs = timeit.repeat(call, number=200_000, repeat=7)
        return min(runs) / 200_000 * 1e9

    return (best(guarded) - best(work)) / DESIGN_CIRCUITBREAKER_ADDED_NS


async def hello(request: Request) -> Response:
    return PlainTextResponse("ok")


def routes() -> list[Route]:
    table = []
    for index in range(ROUTES - 2):
        if index % 2:
            table.append(Route(f"/r{index}/{{item_id:int}}", hello, methods=["GET", "POST"]))
        else:
            table.append(Route(f"/static/r{index}", hello, methods=["GET", "POST"]))

    @features(requires=["read"], optional=["ai"])
    async def summary(request: Request) -> Response:
        return PlainTextResponse("ok")

    table.append(Route("/summary", summary))
    table.append(Route("/target/{item_id:int}", hello))
    return table


class Noop(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        return await call_next(request)


def build(kind: str, board: SnapshotBoard) -> Any:
    middleware = []
    if kind == "brownout":
        middleware = [Middleware(BrownoutMiddleware, board=board)]
    elif kind == "basehttp":
        middleware = [Middleware(Noop)]
    return Starlette(routes=routes(), middleware=middleware)


async def trivial(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI app that answers: isolates the middleware's own cost, which the
    ~50 us of Starlette routing and response building otherwise buries in noise."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def scope_for(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class Sink:
    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


Runner = Callable[[int], int]


def runner(app: Any, path: str, expect: int) -> Runner:
    template = scope_for(path)
    sink = Sink()
    loop = asyncio.new_event_loop()

    async def loop_body(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            await app(dict(template), receive, sink)
        return time.perf_counter_ns() - start

    def run(n: int) -> int:
        elapsed = loop.run_until_complete(loop_body(n))
        if sink.status != expect:
            raise SystemExit(f"{path}: expected status {expect}, got {sink.status}")
        return elapsed

    return run


def measure(rows: dict[str, Runner], n: int, samples: int) -> dict[str, float]:
    best = dict.fromkeys(rows, float("inf"))
    for run in rows.values():
        run(max(100, n // 10))  # warm caches and the route table
    for _ in range(samples):
        for name, run in rows.items():
            gc.collect()
            gc.disable()
            try:
                elapsed = run(n)
            finally:
                gc.enable()
            best[name] = min(best[name], elapsed / n)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--slowdown", type=float, default=None, help="instead of measuring it with circuitbreaker"
    )
    args = parser.parse_args()
    factor = args.slowdown or slowdown()
    n, samples = (500, 3) if args.quick else (5_000, 7)

    optimal, limited, emergency = SnapshotBoard(), SnapshotBoard(), SnapshotBoard()
    for board, level in ((limited, Level.LIMITED), (emergency, Level.EMERGENCY)):
        board.publish(Snapshot(level=level, policy=board.matrix.policy(level)))

    bare = build("bare", optimal)
    guarded = build("brownout", optimal)
    rows = {
        "bare Starlette, 50 routes": runner(bare, "/target/7", 200),
        "+ BrownoutMiddleware, OPTIMAL": runner(guarded, "/target/7", 200),
        "+ BrownoutMiddleware, degraded (LIMITED)": runner(
            build("brownout", limited), "/summary", 200
        ),
        "+ BrownoutMiddleware, rejected (EMERGENCY)": runner(
            build("brownout", emergency), "/target/7", 503
        ),
        "+ BaseHTTPMiddleware no-op (reference)": runner(
            build("basehttp", optimal), "/target/7", 200
        ),
        "BrownoutMiddleware /livez": runner(guarded, "/livez", 200),
    }
    isolated = BrownoutMiddleware(trivial, board=optimal, routes_from=Starlette(routes=routes()))
    rows["trivial ASGI app"] = runner(trivial, "/target/7", 200)
    rows["+ BrownoutMiddleware (50-route table), OPTIMAL"] = runner(isolated, "/target/7", 200)
    best = measure(rows, n, samples)
    base = best["bare Starlette, 50 routes"]
    scaled = BUDGET_NS * factor

    print(f"Python {sys.version.split()[0]}, {n} requests x {samples} samples, best per request")
    print(f"{'row':52} {'ns/req':>9} {'added ns':>9} {'ratio':>6}")
    for name, ns in best.items():
        own = best["trivial ASGI app"] if "trivial" in name or "50-route table" in name else base
        added = ns - own
        print(f"{name:52} {ns:9.0f} {added:9.0f} {ns / own:6.2f}x")
    added = best["+ BrownoutMiddleware (50-route table), OPTIMAL"] - best["trivial ASGI app"]
    print()
    # As in breakers.py, two verdicts: the budget as written (which a machine slower than
    # the reference fails on speed alone) and the budget scaled to this machine.
    print(
        f"budget: <= {BUDGET_NS} ns added on the reference machine; x{factor:.2f} here "
        f"(circuitbreaker) = {scaled:.0f} ns. measured (isolated rows) {added:.0f} ns added "
        f"({added / factor:.0f} ns reference-equivalent): "
        f"{_verdict(added, BUDGET_NS)} as written, {_verdict(added, scaled)} scaled"
    )
    return 0


def _verdict(added: float, budget: float) -> str:
    return "within budget" if added <= budget else "OVER budget"


if __name__ == "__main__":
    sys.exit(main())
