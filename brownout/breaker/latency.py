"""Local, lock-free latency histograms that the telemetry bridge exports at collect time.

Recording an OpenTelemetry histogram measurement costs ~10 µs in SDK 1.45 on a small
machine; a bisect and two list updates cost well under 100 ns. The bucket boundaries are
OpenTelemetry's semantic-convention boundaries for durations in seconds.
"""

from __future__ import annotations

from bisect import bisect_left

DURATION_BOUNDARIES: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
_FIRST_BOUNDARY = DURATION_BOUNDARIES[0]


class LatencyHistogram:
    """Per-bucket counts and sums; the sums make exact bucket means (and totals) exportable.

    The first bucket (<= 5 ms, where nearly every call to a healthy cache or local
    database lands) lives in two attributes rather than in the lists: the hot paths update
    ``first_count`` and ``first_sum`` directly, which around a real redis round trip, with
    cold caches, measured ~0.25 µs cheaper than indexing two lists. Read the buckets with
    :meth:`bucket_counts` and :meth:`bucket_sums`.
    """

    __slots__ = ("counts", "first_count", "first_sum", "sums")

    def __init__(self) -> None:
        self.first_count = 0
        self.first_sum = 0.0
        self.counts = [0] * (len(DURATION_BOUNDARIES) + 1)  # index 0 stays 0
        self.sums = [0.0] * (len(DURATION_BOUNDARIES) + 1)

    def record(self, seconds: float) -> None:
        if seconds <= _FIRST_BOUNDARY:
            self.first_count += 1
            self.first_sum += seconds
            return
        index = bisect_left(DURATION_BOUNDARIES, seconds)
        self.counts[index] += 1
        self.sums[index] += seconds

    def bucket_counts(self) -> list[int]:
        counts = list(self.counts)
        counts[0] = self.first_count
        return counts

    def bucket_sums(self) -> list[float]:
        sums = list(self.sums)
        sums[0] = self.first_sum
        return sums

    @property
    def count(self) -> int:
        return self.first_count + sum(self.counts)


class OperationStats:
    """Latency of one operation of one breaker (``GET``, ``SELECT``, ``PutObject``...), by
    outcome. Outcome values index ``by_outcome``; ``REJECTED`` calls have no duration."""

    __slots__ = ("by_outcome", "name", "success")

    def __init__(self, name: str) -> None:
        self.name = name
        # SUCCESS, FAILURE, SLOW, (REJECTED unused), IGNORED
        self.by_outcome = tuple(LatencyHistogram() for _ in range(5))
        self.success = self.by_outcome[0]  # one hop less on the hot path
