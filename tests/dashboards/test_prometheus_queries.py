"""Every dashboard query, run against a real Prometheus scraping the retail example in a
fault scenario (the cache dies, OpenAI answers 429, an operator pins MINIMAL, both
recover): each must parse and show data, and the key panels must show the scenario."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from brownout import BreakerConfig
from examples.demo.openai_server import OpenAIStandIn
from examples.retail import RetailConfig, create_app
from tests.dashboards.dashboard import files, load, queries, range_arguments, selectors, variables
from tests.demo.conftest import ADMIN_KEY
from tests.middleware.conftest import UvicornServer
from tests.servers import RedisServer, free_port, missing

ADMIN = {"X-API-Key": ADMIN_KEY}
ADMIN_LEVEL = "/brownout/admin/level"
JOB = "brownout-test"
SCRAPE_SECONDS = 1
# What Grafana puts in the macros for a 1 s scrape and a 1 s step: $__rate_interval is
# max($__interval + scrape, 4 * scrape).
MACROS = {"__rate_interval": "4s", "__interval": "1s", "__interval_ms": "1000"}

# Producers create these counters' series at their first increment, so Prometheus has no
# earlier 0 sample and rate()/increase() never see that increment (the first outage of
# each breaker, the first OPTIMAL -> DEGRADED). Set to True once the producers report them
# at 0 from startup; every_transition_shows_in_its_panel then holds them to it.
TRANSITION_COUNTERS_START_AT_ZERO = True
TRANSITION_COUNTERS = ("brownout_breaker_transitions_total", "brownout_level_transitions_total")


def retail(config: RetailConfig) -> RetailConfig:
    """The example with /metrics on, breakers that recover within the test, and a health
    service that moves in fractions of a second."""
    return dataclasses.replace(
        config,
        metrics_path="/metrics",
        breaker=BreakerConfig(consecutive_failures=3, open_seconds=0.5, open_max_seconds=1),
        brownout={
            "health": {
                "dwell_seconds": 0.5,
                "smoothing_seconds": 0,
                "heartbeat_seconds": 0.2,
                "probes": {"initial_backoff_seconds": 0.3, "max_backoff_seconds": 1},
            },
            "middleware": {"admin_rate": 100, "admin_burst": 100},
        },
    )


def traffic(http: httpx.Client, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        http.get("/products", params={"limit": 5})
        http.get("/products/3")
        http.post("/orders", json={"items": [{"product_id": 1, "quantity": 1}]})
        time.sleep(0.02)  # a request pace, not a wait for anything


@dataclasses.dataclass
class Prometheus:
    base: str
    log: Path

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:  # a bad query: Prometheus says why in JSON
            return json.load(error)

    def last_scrape(self) -> float:
        """When the latest scrape of the test's target happened (0 before the first)."""
        result = self.api("query", query=f'timestamp(up{{job="{JOB}"}} == 1)')["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def wait_for_scrape_after(self, moment: float, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.last_scrape() <= moment:
            if time.monotonic() > deadline:
                log = self.log.read_text()[-2000:]
                raise AssertionError(f"no scrape of {JOB} after {moment} in {timeout}s:\n{log}")
            time.sleep(0.1)


@contextlib.contextmanager
def prometheus(target_port: int, workdir: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        missing("prometheus is not installed (bash scripts/prometheus.sh installs it)")
    assert binary is not None
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    server = Prometheus(f"http://127.0.0.1:{port}", workdir / "prometheus.log")
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _ready(server.base):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Prometheus did not start:\n{server.log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def grafana_regex(value: str) -> str:
    """A variable's single value as Grafana writes it into a =~ matcher: regex-escaped,
    inside a PromQL string (hence the doubled backslash)."""
    return re.sub(r"[\\^$*+?.()|{}\[\]]", lambda match: "\\\\" + match.group(), value)


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` as Grafana sends it: ``$name`` / ``${name}`` replaced, macros included."""
    everything = {**MACROS, **values}
    names = "|".join(sorted(map(re.escape, everything), key=len, reverse=True))
    done = re.sub(r"\$\{(" + names + r")\}|\$(" + names + r")\b",
                  lambda match: everything[match.group(1) or match.group(2)], expr)  # fmt: skip
    assert "$" not in done, f"a variable the test does not know in {done!r}"
    return done


@dataclasses.dataclass
class Scenario:
    """What Prometheus took from the scenario: the window and the target's labels."""

    prometheus: Prometheus
    start: float
    end: float
    instance: str

    @property
    def values(self) -> dict[str, str]:
        return {"job": grafana_regex(JOB), "instance": grafana_regex(self.instance)}

    def series(self, expr: str) -> list[dict[str, Any]]:
        answer = self.prometheus.api("query_range", query=substitute(expr, self.values),
                                     start=self.start, end=self.end, step=1)  # fmt: skip
        assert answer.get("status") == "success", f"{expr}\n{answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def numbers(series: dict[str, Any]) -> list[float]:
    return [float(value) for _, value in series["values"]]


@pytest.fixture
def scenario(
    tmp_path: Path,
    retail_config: RetailConfig,
    redis_process: RedisServer,
    openai_server: OpenAIStandIn,
) -> Iterator[Scenario]:
    app = create_app(retail(retail_config))
    with (
        UvicornServer(app) as service,
        httpx.Client(base_url=service.url, timeout=5) as http,
        prometheus(service.port, tmp_path) as server,
    ):
        # A baseline first: counters must have a sample before they move for rate() to
        # see the move.
        server.wait_for_scrape_after(0)
        start = server.last_scrape()
        traffic(http, 3)  # healthy
        redis_process.kill()  # the cache dies: its breaker opens, DEGRADED
        openai_server.rate_limit(True)  # and OpenAI answers 429
        traffic(http, 3)
        level = http.get("/health").json()
        assert level["status"] == "warn", level
        # An operator pins MINIMAL for two seconds: writes are rejected.
        pin = {"level": "minimal", "ttl": 2, "reason": "dashboard test"}
        assert http.post(ADMIN_LEVEL, headers=ADMIN, json=pin).status_code == 200
        traffic(http, 2)
        redis_process.start()  # both come back: probes, half-open, closed, recovered
        openai_server.rate_limit(False)
        traffic(http, 5)
        # Prometheus takes the final state: two scrapes after the last request.
        server.wait_for_scrape_after(time.time() + SCRAPE_SECONDS)
        yield Scenario(server, start, server.last_scrape(), f"127.0.0.1:{service.port}")


def test_the_dashboards_against_prometheus(scenario: Scenario, subtests: pytest.Subtests) -> None:
    """One scenario (about 20 s), then every check as a subtest of its own."""
    for path in files():
        for name, expr in queries(load(path)):
            with subtests.test(msg=name):
                query_shows_data(scenario, expr)
    for check in (
        the_variables_list_the_scraped_target,
        the_panels_show_the_scenario,
        every_transition_shows_in_its_panel,
    ):
        with subtests.test(msg=check.__name__):
            check(scenario)


def query_shows_data(scenario: Scenario, expr: str) -> None:
    result = scenario.series(expr)
    assert result, f"no series: {expr}"
    finite = [v for series in result for v in numbers(series) if not math.isnan(v)]
    # Grafana draws nothing for NaN: a quantile of an empty rate, 0/0.
    assert finite, f"only NaN: {expr}"
    counters = {metric for metric, _ in selectors(expr)}
    if range_arguments(expr) and not counters & set(TRANSITION_COUNTERS):
        assert max(finite) > 0, f"a rate that never moved: {expr}"


def the_variables_list_the_scraped_target(scenario: Scenario) -> None:
    declared = variables(load(files()[0]))
    found = {}
    for name in ("job", "instance"):
        query = declared[name]["query"]["query"]
        selector, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query).groups()  # type: ignore[union-attr]
        answer = scenario.prometheus.api(
            f"label/{label}/values", **{"match[]": substitute(selector, scenario.values)},
            start=scenario.start, end=scenario.end,
        )  # fmt: skip
        assert answer["status"] == "success", answer
        found[name] = answer["data"]
    assert found == {"job": [JOB], "instance": [scenario.instance]}


def panel_series(scenario: Scenario, title: str, ref: str = "A") -> list[dict[str, Any]]:
    expr = dict(queries(load(files()[0])))[f"{title} / {ref}"]
    return scenario.series(expr)


def the_panels_show_the_scenario(scenario: Scenario) -> None:
    (level,) = panel_series(scenario, "Degradation level")
    assert {0, 1, 3} <= set(numbers(level))  # OPTIMAL, DEGRADED, the pinned MINIMAL
    assert numbers(level)[-1] == 0

    breakers = {row["metric"]["breaker"].split(":")[0]: numbers(row)
                for row in panel_series(scenario, "Breaker states")}  # fmt: skip
    for dependency in ("redis", "openai http"):  # OPEN, then CLOSED again
        assert 4 in breakers[dependency], breakers
        assert breakers[dependency][-1] == 0, breakers
    assert set(breakers["sqlite"]) == {0}

    decisions: dict[str, float] = {}
    for row in panel_series(scenario, "Requests by decision"):
        decision = row["metric"]["decision"]
        decisions[decision] = max(decisions.get(decision, 0.0), *numbers(row))
    assert decisions.keys() == {"served", "degraded", "rejected"}
    assert min(decisions.values()) > 0

    scores = {row["metric"]["component"]: numbers(row)
              for row in panel_series(scenario, "Component scores")}  # fmt: skip
    assert min(scores["cache"]) == 0
    assert scores["cache"][-1] == 100
    assert min(scores["database"]) == 100

    recoveries = {row["metric"]["component"]: numbers(row)[-1]
                  for row in panel_series(scenario, "Recoveries")}  # fmt: skip
    assert recoveries["cache"] >= 1
    assert recoveries["openai"] >= 1


def every_transition_shows_in_its_panel(scenario: Scenario) -> None:
    """A transition the counter counted must show in its panel at least once."""
    invisible = []
    for title, counter, labels in (
        ("Breaker transitions", TRANSITION_COUNTERS[0], ("breaker", "to")),
        ("Level transitions", TRANSITION_COUNTERS[1], ("from", "to")),
    ):
        counted = {
            tuple(row["metric"][label] for label in labels)
            for row in scenario.series(f"max by ({', '.join(labels)}) ({counter}) > 0")
        }
        shown = {
            tuple(row["metric"][label] for label in labels)
            for row in panel_series(scenario, title)
            if max(numbers(row)) > 0
        }
        assert counted, f"the scenario made no {counter}"
        invisible += [f"{title}: {' -> '.join(key)}" for key in sorted(counted - shown)]
    if TRANSITION_COUNTERS_START_AT_ZERO:
        assert invisible == []
    elif invisible:
        pytest.xfail(
            "transition counters start at their first increment, which increase() cannot "
            f"see (TRANSITION_COUNTERS_START_AT_ZERO): {invisible}"
        )
    else:
        pytest.fail("every transition shows: set TRANSITION_COUNTERS_START_AT_ZERO = True")
