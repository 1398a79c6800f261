"""Settings that make the demo move in seconds instead of minutes.

Production defaults hold a breaker open for 10 s and ask a better score to hold for 30 s
before the level climbs; here breakers open for 2 s (up to 8 s) and the level climbs after
2 s, so a whole outage and recovery fits in a terminal session.
"""

from __future__ import annotations

from typing import Any

from brownout import BreakerConfig

BREAKER = BreakerConfig(
    window_size=5,
    minimum_calls=8,
    consecutive_failures=5,
    open_seconds=2.0,
    open_max_seconds=8.0,
)

BROWNOUT: dict[str, Any] = {
    "health": {
        "dwell_seconds": 2.0,
        "smoothing_seconds": 1.0,
        "heartbeat_seconds": 0.5,
        "probes": {"initial_backoff_seconds": 1.0, "max_backoff_seconds": 3.0,
                   "timeout_seconds": 2.0},
        # One long outage re-opens a breaker every few seconds; that is not flapping.
        "cascade": {"flap_opens": 8},
    },
    # The dashboard polls the admin status twice a second.
    "middleware": {"retry_jitter": 0.1, "admin_rate": 20.0, "admin_burst": 40},
}  # fmt: skip

TIMEOUT_SECONDS = 1.0
"""Client timeouts: a hung S3 must fail fast enough for its breaker to see it."""

DATABASE_LATENCY_SECONDS = 0.3
"""The slow-database fault: past the database SLA's 100 ms warning, short of its 500 ms
critical mark, so the database scores about 50 while still answering."""
