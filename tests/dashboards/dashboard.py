"""Reading the shipped Grafana dashboards: their panels, queries and conventions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
FILTERS = ('job=~"$job"', 'instance=~"$instance"')
RANGE_FUNCTIONS = ("rate", "irate", "increase")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_AGGREGATION = re.compile(r"(by|without)\s*\(")
# Words that are PromQL syntax, not metric names, when they stand outside a call.
_KEYWORDS = frozenset(("bool", "offset", "and", "or", "unless", "inf", "nan"))


def files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # rows


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title / refId, expr)`` for every panel query."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{panel['title']} / {target.get('refId', '?')}", target.get("expr", "")


def selectors(expr: str) -> list[tuple[str, str]]:
    """Every series selector of a PromQL expression as ``(metric name, matchers)``; a bare
    name has empty matchers. Label lists after by/without/on/ignoring are not selectors."""
    found = []
    index = 0
    while index < len(expr):
        char = expr[index]
        if char in "\"'":
            index = _STRING.match(expr, index).end()  # type: ignore[union-attr]
            continue
        if char == "[":
            index = expr.index("]", index) + 1
            continue
        if char == "{":  # a selector without a name: {__name__=~"..."}
            end = _closing(expr, index, "{", "}")
            found.append(("", expr[index + 1 : end]))
            index = end + 1
            continue
        name = _NAME.match(expr, index)
        if name is None or (index > 0 and (expr[index - 1].isalnum() or expr[index - 1] in "_.$")):
            index += 1
            continue
        word, index = name.group(), name.end()
        rest = expr[index:].lstrip()
        if word in ("by", "without", "on", "ignoring", "group_left", "group_right"):
            if rest.startswith("("):  # a label list, skip it
                index = _closing(expr, expr.index("(", index), "(", ")") + 1
            continue
        if rest.startswith("(") or _AGGREGATION.match(rest) or word.lower() in _KEYWORDS:
            continue  # a function call, an aggregation or syntax
        matchers = ""
        if rest.startswith("{"):
            start = expr.index("{", index)
            end = _closing(expr, start, "{", "}")
            matchers, index = expr[start + 1 : end], end + 1
        found.append((word, matchers))
    return found


def range_arguments(expr: str) -> list[tuple[str, str]]:
    """``(function, range)`` for every rate/irate/increase call; range is what stands in the
    brackets that end its argument, or "" when the argument has none."""
    found = []
    for call in re.finditer(r"\b(" + "|".join(RANGE_FUNCTIONS) + r")\s*\(", expr):
        start = call.end() - 1
        argument = expr[start + 1 : _closing(expr, start, "(", ")")].rstrip()
        window = re.search(r"\[([^\[\]]*)\](\s*offset\s+\S+)?$", argument)
        found.append((call.group(1), window.group(1) if window else ""))
    return found


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char in "\"'":
            index = _STRING.match(text, index).end()  # type: ignore[union-attr]
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ValueError(f"unbalanced {opening}{closing} in {text!r}")


def _datasources(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``datasource`` value anywhere in the document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield f"{path}.datasource", value
            yield from _datasources(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _datasources(value, f"{path}[{index}]")


def problems(dashboard: dict[str, Any]) -> list[str]:
    """Grafana dashboard-linter conventions this project follows; empty when all hold."""
    found = []
    if dashboard.get("schemaVersion", 0) < 39:
        found.append(f"schemaVersion {dashboard.get('schemaVersion')} < 39")
    found += _variable_problems(variables(dashboard))
    for where, source in _datasources(dashboard):
        if source != DATASOURCE:
            found.append(f"{where}: datasource {source!r}, not {DATASOURCE}")
    ids = [panel.get("id") for panel in panels(dashboard)]
    if len(ids) != len(set(ids)):
        found.append(f"duplicate panel ids: {ids}")
    for panel in panels(dashboard):
        found += [f"panel {panel.get('title', '?')!r}: {problem}" for problem in _panel(panel)]
    return found


def _variable_problems(declared: dict[str, dict[str, Any]]) -> list[str]:
    found = []
    source = declared.get("datasource")
    if source is None or source.get("type") != "datasource" or source.get("query") != "prometheus":
        found.append("no 'datasource' variable of type datasource for prometheus")
    for name in ("job", "instance"):
        variable = declared.get(name)
        if variable is None:
            found.append(f"no '{name}' variable")
            continue
        query = variable.get("query", {})
        text = query.get("query", "") if isinstance(query, dict) else str(query)
        if variable.get("type") != "query" or not text.startswith("label_values("):
            found.append(f"variable '{name}' is not a label_values query: {text!r}")
        if not (variable.get("multi") and variable.get("includeAll")):
            found.append(f"variable '{name}' does not allow several values and All")
        if variable.get("datasource") != DATASOURCE:
            found.append(f"variable '{name}' does not query {DATASOURCE}")
    return found


def _panel(panel: dict[str, Any]) -> list[str]:
    found = []
    if not panel.get("description"):
        found.append("no description")
    if panel.get("type") != "row" and not panel.get("fieldConfig", {}).get("defaults", {}).get(
        "unit"
    ):
        found.append("no unit")
    targets = panel.get("targets", [])
    if targets and panel.get("datasource") != DATASOURCE:
        found.append(f"panel datasource is not {DATASOURCE}")
    for target in targets:
        refid = target.get("refId", "?")
        if target.get("datasource") != DATASOURCE:
            found.append(f"{refid}: datasource is not {DATASOURCE}")
        expr = target.get("expr", "")
        if not expr.strip():
            found.append(f"{refid}: empty query")
            continue
        for name, matchers in selectors(expr):
            for wanted in FILTERS:
                if wanted not in matchers:
                    found.append(f"{refid}: selector {name or '{...}'} lacks {wanted}")
        for function, window in range_arguments(expr):
            if window != "$__rate_interval":
                found.append(f"{refid}: {function}() over [{window}], not [$__rate_interval]")
    return found
