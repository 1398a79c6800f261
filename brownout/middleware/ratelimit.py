"""A token bucket per client, for the admin API."""

from __future__ import annotations

import time
from collections.abc import Callable


class ClientBuckets:
    """``rate`` requests per second per client with bursts of ``burst``.

    At most ``max_clients`` buckets are kept; when full, the buckets are dropped and start
    full again (memory stays bounded however many addresses knock).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 1024,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """Spend one token for ``client``: 0 when allowed, else seconds until one is due."""
        now = self.clock()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if client not in self._buckets and len(self._buckets) >= self.max_clients:
            self._buckets.clear()
        self._buckets[client] = (tokens - 1.0, now)
        return 0.0
