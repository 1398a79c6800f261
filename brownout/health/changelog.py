"""One structured JSON log line per level change."""

from __future__ import annotations

import json
import logging

from opentelemetry import trace

from brownout.health.history import LevelChange

logger = logging.getLogger("brownout.health")


def log_level_change(change: LevelChange) -> None:
    """Worse levels log at WARNING, better ones at INFO; the current span's trace id is
    included so the change can be found next to the request that caused it."""
    record = {"event": "brownout.level_change", **change.as_dict()}
    del record["at"]
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        record["trace_id"] = format(context.trace_id, "032x")
    logger.log(
        logging.WARNING if change.new > change.old else logging.INFO,
        json.dumps(record, sort_keys=True),
    )
