"""The ``brownout`` command.

``brownout demo`` runs the retail example (``examples/retail`` in the source tree) against
local stand-ins of its dependencies and breaks them one by one; ``brownout status URL``
shows the level and components of a running service.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ADMIN_KEY_VARIABLE = "BROWNOUT_ADMIN_API_KEY"


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="brownout", description="Keep a service useful while its dependencies fail."
    )
    commands = command.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the retail example and break its dependencies one by one",
        description=(
            "Start the retail example service with a private redis-server, a moto S3 server "
            "and a local OpenAI-compatible server, send steady traffic, break the "
            "dependencies phase by phase and show the degradation level live. Exits 1 if "
            "a phase does not reach its expected level."
        ),
    )
    demo.add_argument(
        "--profile",
        choices=("full", "short"),
        default="full",
        help="full: about 90 s; short: about 40 s, used by the tests (default: full)",
    )
    demo.add_argument("--forever", action="store_true", help="repeat the chaos script until Ctrl-C")
    demo.add_argument(
        "--database-url",
        metavar="URL",
        help="a PostgreSQL URL to use instead of a temporary SQLite file (slowed through "
        "a TCP latency proxy)",
    )
    demo.add_argument(
        "--plain",
        action="store_true",
        help="print events line by line instead of redrawing the screen",
    )

    status = commands.add_parser(
        "status",
        help="show the level and components of a running service",
        description=(
            "GET the admin status (with an API key) or /health (without) of a service "
            f"running brownout. The key is read from --api-key or ${ADMIN_KEY_VARIABLE}."
        ),
    )
    status.add_argument("url", help="the service's base URL, e.g. http://127.0.0.1:8000")
    status.add_argument("--api-key", help=f"admin API key (default: ${ADMIN_KEY_VARIABLE})")
    status.add_argument("--prefix", default="", help="the middleware's endpoint prefix")
    status.add_argument("--json", action="store_true", help="print the raw JSON document")
    return command


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    if arguments.command == "demo":
        return _demo(arguments)
    return _status(arguments)


def _demo(arguments: argparse.Namespace) -> int:
    try:
        run = _demo_module()
    except ImportError as error:
        print(
            f"brownout demo: {error}. The demo runs the retail example from brownout's source "
            "tree and needs its extras: pip install -e '.[redis,sqlalchemy,boto3,openai,"
            "prometheus,test]'",
            file=sys.stderr,
        )
        return 2
    options = run.Options(
        profile=arguments.profile,
        forever=arguments.forever,
        database_url=arguments.database_url,
        live=False if arguments.plain else None,
    )
    code: int = run.run(options)
    return code


def _demo_module() -> Any:
    # The example lives next to the package in the source tree, not inside it.
    source_tree = Path(__file__).resolve().parents[1]
    if (source_tree / "examples" / "demo").is_dir() and str(source_tree) not in sys.path:
        sys.path.insert(0, str(source_tree))
    return importlib.import_module("examples.demo.run")


def _status(arguments: argparse.Namespace) -> int:
    base = arguments.url.rstrip("/") + arguments.prefix
    key = arguments.api_key or os.environ.get(ADMIN_KEY_VARIABLE)
    path = "/brownout/admin/status" if key else "/health"
    request = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    if key:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            document = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 503 and path == "/health":  # fail at EMERGENCY still has a body
            document = json.load(error)
        else:
            print(f"brownout status: {base + path} answered {error.code}", file=sys.stderr)
            return 1
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"brownout status: cannot read {base + path}: {error}", file=sys.stderr)
        return 1
    if arguments.json:
        print(json.dumps(document, indent=2))
    else:
        print(describe(document))
    return 0


def describe(document: dict[str, Any]) -> str:
    """A few lines a person reads: level, score, then each component and its breakers."""
    if "level" in document:
        lines = [
            f"level {document['level']}  score {document.get('score', '?')}  "
            f"({document.get('reason', '')})"
        ]
        components = document.get("control", {}).get("components", {})
        for name in sorted(components):
            component = components[name]
            breakers = ", ".join(
                f"{breaker['name']}: {breaker['state']}" for breaker in component["breakers"]
            )
            lines.append(
                f"  {name:<10} {component['score']:6.1f}  {component['state']:<9} {breakers}"
            )
        return "\n".join(lines)
    return f"health {document.get('status', '?')}  {document.get('description', '')}".rstrip()
