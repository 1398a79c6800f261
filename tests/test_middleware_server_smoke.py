"""The pieces of benchmarks/middleware_server.py that run without wrk or a server: the app
factory uvicorn loads (BENCH_APP picks the app and its level) and the reading of wrk's
output. The benchmark itself is a report, run by hand; timings live in benchmarks/README.md.
"""

from __future__ import annotations

import httpx
import pytest

from benchmarks import middleware_server

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:40123/target/7
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.92ms    1.01ms  21.35ms   91.02%
    Req/Sec     3.27k   201.44     3.51k    86.67%
  9770 requests in 3.00s, 1.45MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 9770
Requests/sec:   3254.87
Transfer/sec:    495.02KB
"""


@pytest.mark.parametrize(("kind", "status"), [("bare", 200), ("optimal", 200), ("emergency", 503)])
async def test_factory_serves_the_app_named_by_bench_app(
    kind: str, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_APP", kind)
    app = middleware_server.app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        response = await client.get(middleware_server.TARGET)
    assert response.status_code == status
    assert ("retry-after" in response.headers) is (kind == "emergency")
    guarded = "BrownoutMiddleware" in [m.cls.__name__ for m in app.user_middleware]
    assert guarded is (kind != "bare")


def test_factory_names_the_choices_for_an_unknown_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_APP", "optimum")
    with pytest.raises(SystemExit, match="'optimum': expected one of bare, optimal, emergency"):
        middleware_server.app()


def test_wrk_output_is_read_from_its_own_lines() -> None:
    run = middleware_server.parse_wrk(WRK_OUTPUT)
    assert run == middleware_server.WrkRun(
        requests=9770,
        per_second=3254.87,
        rejected=9770,
        socket_errors="connect 0, read 2, write 0, timeout 0",
    )


def test_clean_wrk_output_has_no_rejections_or_socket_errors() -> None:
    lines = WRK_OUTPUT.splitlines(keepends=True)
    clean = "".join(line for line in lines if "Socket errors" not in line and "Non-2xx" not in line)
    run = middleware_server.parse_wrk(clean)
    assert (run.rejected, run.socket_errors) == (0, None)


def test_unreadable_wrk_output_is_an_error() -> None:
    with pytest.raises(SystemExit, match="could not read wrk's output"):
        middleware_server.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
