"""The shipped dashboards follow Grafana's dashboard-linter conventions."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from brownout import BreakerState, Level
from tests.dashboards.dashboard import files, load, panels, problems, range_arguments, selectors


def test_there_is_a_dashboard() -> None:
    assert [path.name for path in files()] == ["brownout-overview.json"]


@pytest.mark.parametrize("path", files(), ids=lambda path: path.name)
def test_dashboard_follows_the_conventions(path: Path) -> None:
    assert problems(load(path)) == []


def overview() -> dict[str, Any]:
    return load(files()[0])


def panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in panels(dashboard) if p["title"] == title)


def mapped(panel: dict[str, Any]) -> dict[int, str]:
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    return {int(value): option["text"] for value, option in mapping["options"].items()}


def test_the_level_panel_names_every_level() -> None:
    levels = mapped(panel(overview(), "Degradation level"))
    assert levels == {int(level): level.name for level in Level}


def test_the_breaker_panel_codes_every_state_once() -> None:
    breakers = panel(overview(), "Breaker states")
    codes = {
        state: int(code)
        for state, code in re.findall(
            r'state="(\w+)"\} == 1\) \* (\d+)', breakers["targets"][0]["expr"]
        )
    }
    assert sorted(codes) == sorted(state.value for state in BreakerState)
    assert mapped(breakers) == {code: state.upper() for state, code in codes.items()}


def test_selectors_and_ranges_are_read_from_nested_queries() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=~"$job", x="}"}[5m])))'
        " / on (instance) group_left b offset $__interval"
        ' + sum without (q) (increase(c{instance=~"$instance"}[$__rate_interval] offset 1m))'
        ' and {__name__=~"d_.+"} > bool 1e3'
    )
    assert selectors(expr) == [
        ("a_bucket", 'job=~"$job", x="}"'),
        ("b", ""),
        ("c", 'instance=~"$instance"'),
        ("", '__name__=~"d_.+"'),
    ]
    assert range_arguments(expr) == [("rate", "5m"), ("increase", "$__rate_interval")]


def test_the_checks_catch_broken_dashboards() -> None:
    broken = copy.deepcopy(overview())
    broken["schemaVersion"] = 30
    calls = panel(broken, "Calls by outcome")
    calls["description"] = ""
    calls["fieldConfig"]["defaults"].pop("unit")
    calls["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    calls["targets"][0]["expr"] = "sum(rate(brownout_breaker_calls_total[5m]))"
    share = panel(broken, "Rejected share")
    share["targets"][0].pop("datasource")
    share["targets"][0]["expr"] = (  # the second selector forgets the filters
        'sum(rate(x{job=~"$job", instance=~"$instance"}[$__rate_interval]))'
        " / sum(rate(x[$__rate_interval]))"
    )
    latency = panel(broken, "Dependency latency p50 / p95 / p99")
    latency["targets"][0]["expr"] = latency["targets"][0]["expr"].replace(
        "[$__rate_interval]", "[1m]"
    )
    panel(broken, "Recoveries")["targets"][0]["expr"] = " "
    panel(broken, "Component scores")["id"] = 1
    variables = broken["templating"]["list"]
    variables[1]["multi"] = False
    variables[2]["query"]["query"] = "up"
    broken["annotations"]["list"].append({"datasource": "Prometheus", "name": "deploys"})
    del variables[0]

    found = "\n".join(problems(broken))
    for expected in (
        "schemaVersion 30 < 39",
        "no 'datasource' variable",
        "panel 'Calls by outcome': no description",
        "panel 'Calls by outcome': no unit",
        "'Calls by outcome': panel datasource is not",
        "'uid': 'P1809F7CD0C75ACF3'",
        "'Calls by outcome': A: selector brownout_breaker_calls_total lacks job=~\"$job\"",
        "'Calls by outcome': A: rate() over [5m], not [$__rate_interval]",
        "'Rejected share': A: datasource is not",
        "'Rejected share': A: selector x lacks instance=~\"$instance\"",
        "'Dependency latency p50 / p95 / p99': A: rate() over [1m]",
        "'Recoveries': A: empty query",
        "duplicate panel ids",
        "variable 'job' does not allow several values and All",
        "variable 'instance' is not a label_values query",
        ".annotations.list[0].datasource: datasource 'Prometheus'",
    ):
        assert expected in found
    assert problems(overview()) == []
