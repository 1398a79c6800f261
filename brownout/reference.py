"""The settings tree rendered as a Markdown reference: every field with its environment
variable, default and meaning. README.md's configuration reference is this output (a test
keeps them equal), so the documentation cannot drift from the model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined, to_jsonable_python

from brownout.settings import BrownoutSettings

ENV_PREFIX = "BROWNOUT_"


def settings_reference(model: type[BaseModel] = BrownoutSettings) -> str:
    """A Markdown table of every setting under ``model``."""
    lines = [
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for path, field_default, description in _fields(model, ()):
        env = ENV_PREFIX + "__".join(part.upper() for part in path)
        lines.append(f"| `{'.'.join(path)}` | `{env}` | {field_default} | {_cell(description)} |")
    return "\n".join(lines) + "\n"


def _fields(
    model: type[BaseModel], prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], str, str]]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from _fields(nested, path)
            continue
        default: Any = field.default
        if default is PydanticUndefined and field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        yield path, _render(default), field.description or ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _render(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "unset"
    text = json.dumps(to_jsonable_python(value), sort_keys=True)
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
