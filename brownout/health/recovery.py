"""The recovery loop: the aggregator's heartbeat, and active probes for down components.

Each step collects metrics, evaluates, and runs the probes that are due for components
whose breakers are open or half-open, on exponential backoff (10 -> 20 -> 40 s ... capped).

Probes run inside ``brownout.breaker.probing()``, so a probe may use the same instrumented
client as the app: the open breaker lets it through without letting its outcome open or
close anything. A successful probe ends the open period of the component's OPEN breakers
(the ones the probe vouches for) at once, so the next real calls are the half-open probes
instead of waiting out the breaker's own open period; those calls close it, or re-open it
with its backoff intact. A breaker still HALF_OPEN at the next due probe got no real calls
(the level may have switched off the very features that make them: cache_read and ai at
LIMITED, write at MINIMAL), so a second successful probe closes it; without that, the
service would wait at a low level forever. FORCED_OPEN breakers are an operator's decision
and never touched. With ``probes.half_open_on_success`` off, a probe only informs the log.

Use :meth:`RecoveryLoop.start` / :meth:`RecoveryLoop.stop` in an asyncio lifespan, or
:class:`RecoveryThread` in a sync app. Tests drive :meth:`RecoveryLoop.step` by hand.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from brownout.breaker import BreakerState, Clock, RandomSource, probing
from brownout.health.aggregator import HealthAggregator
from brownout.health.probes import Probe
from brownout.health.snapshot import Snapshot
from brownout.settings import ProbeSettings

logger = logging.getLogger("brownout.health")

_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
# Half-open breakers need answered calls to close, and the level may have switched off the
# very features that make those calls (cache_read and ai at LIMITED, write at MINIMAL):
# without probes they would wait forever, and the level with them.
_AWAITING_PROBES = frozenset({_OPEN, _HALF_OPEN})


@dataclass(frozen=True, slots=True)
class ProbeAttempt:
    probe: str
    component: str
    at: float
    ok: bool
    error: str = ""


class _Schedule:
    """When a down component is probed next, and the delay after that."""

    __slots__ = ("delay", "next_at")

    def __init__(self, next_at: float, delay: float) -> None:
        self.next_at = next_at
        self.delay = delay


class RecoveryLoop:
    def __init__(
        self,
        aggregator: HealthAggregator,
        probes: Iterable[Probe] = (),
        *,
        settings: ProbeSettings | None = None,
        heartbeat: float | None = None,
        clock: Clock | None = None,
        random_source: RandomSource = random.random,
    ) -> None:
        self.aggregator = aggregator
        self.settings = settings if settings is not None else aggregator.settings.probes
        self.heartbeat = (
            heartbeat if heartbeat is not None else aggregator.settings.heartbeat_seconds
        )
        self.clock: Clock = clock if clock is not None else aggregator.clock
        self._random = random_source
        self._probes: dict[str, list[Probe]] = {}
        self._schedules: dict[str, _Schedule] = {}
        self.attempts: deque[ProbeAttempt] = deque(maxlen=100)
        """The last probe attempts, oldest first."""
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        for probe in probes:
            self.add_probe(probe)

    # -- probes ---------------------------------------------------------------------------

    def add_probe(self, probe: Probe) -> bool:
        """Register ``probe``; returns ``False`` when settings turned probes or its kind
        off (the probe is then never run)."""
        kinds = self.settings.kinds
        if not self.settings.enabled or not getattr(kinds, probe.kind, kinds.custom):
            logger.info("probe %s is turned off by settings", probe.name)
            return False
        self._probes.setdefault(probe.component, []).append(probe)
        return True

    def probes(self) -> dict[str, tuple[Probe, ...]]:
        return {component: tuple(probes) for component, probes in self._probes.items()}

    def next_probe_at(self, component: str) -> float | None:
        schedule = self._schedules.get(component)
        return None if schedule is None else schedule.next_at

    def _due(self, snapshot: Snapshot, now: float) -> list[Probe]:
        """Schedule newly down components, forget recovered ones, return what is due."""
        down = {
            name
            for name, health in snapshot.components.items()
            if name in self._probes
            and any(status.state in _AWAITING_PROBES for status in health.breakers)
        }
        for name in list(self._schedules):
            if name not in down:
                del self._schedules[name]
        due: list[Probe] = []
        initial = self.settings.initial_backoff_seconds
        for name in down:
            schedule = self._schedules.get(name)
            if schedule is None:
                self._schedules[name] = _Schedule(now + self._jitter(initial), initial)
            elif now >= schedule.next_at:
                due.extend(self._probes[name])
        return due

    def _jitter(self, delay: float) -> float:
        jitter = self.settings.jitter
        return delay * (1.0 + jitter * (2.0 * self._random() - 1.0)) if jitter else delay

    def _settle(self, probe: Probe, error: BaseException | None, now: float) -> bool:
        ok = error is None
        self.attempts.append(
            ProbeAttempt(probe.name, probe.component, now, ok, "" if ok else _describe(error))
        )
        schedule = self._schedules.get(probe.component)
        if ok:
            logger.info("probe %s succeeded", probe.name)
            self._schedules.pop(probe.component, None)
            if self.settings.half_open_on_success:
                self._advance_breakers(probe)
            return True
        if schedule is not None:
            settings = self.settings
            schedule.delay = min(
                schedule.delay * settings.backoff_multiplier, settings.max_backoff_seconds
            )
            schedule.next_at = now + self._jitter(schedule.delay)
        return False

    def _advance_breakers(self, probe: Probe) -> None:
        # OPEN -> HALF_OPEN: real calls become the probes. HALF_OPEN (still there at the
        # next due probe, so no real call closed it) -> CLOSED on this second success.
        wanted = set(probe.breakers)
        reason = f"recovery probe {probe.name} succeeded"
        for breaker in self.aggregator.registry:
            if breaker.component != probe.component or (wanted and breaker.name not in wanted):
                continue
            if breaker.state is _HALF_OPEN:
                breaker.reset(f"{reason} while half-open probes got no calls")
            else:
                breaker.half_open(reason)

    # -- one step -------------------------------------------------------------------------

    async def step(self) -> Snapshot:
        """Collect, evaluate, run due probes (re-evaluating when one succeeded)."""
        snapshot = self.aggregator.tick()
        now = self.clock()
        recovered = False
        for probe in self._due(snapshot, now):
            error = await self._run_async(probe)
            recovered |= self._settle(probe, error, self.clock())
        return self.aggregator.evaluate() if recovered else snapshot

    def step_sync(self) -> Snapshot:
        """:meth:`step` for a thread without an event loop; async probes run on a private
        loop, so give them clients not bound to another loop."""
        snapshot = self.aggregator.tick()
        now = self.clock()
        recovered = False
        for probe in self._due(snapshot, now):
            error = self._run_sync(probe)
            recovered |= self._settle(probe, error, self.clock())
        return self.aggregator.evaluate() if recovered else snapshot

    async def _run_async(self, probe: Probe) -> BaseException | None:
        timeout = self.settings.timeout_seconds
        try:
            with probing():  # the task and the thread below copy this context
                if probe.is_async:
                    result = await asyncio.wait_for(probe.check(), timeout)
                else:
                    result = await asyncio.wait_for(asyncio.to_thread(probe.check), timeout)
        except Exception as error:
            return error
        return _refused(result)

    def _run_sync(self, probe: Probe) -> BaseException | None:
        timeout = self.settings.timeout_seconds
        try:
            if probe.is_async:

                async def bounded() -> object:
                    return await asyncio.wait_for(probe.check(), timeout)

                with probing():
                    result = asyncio.run(bounded())
            else:
                with probing():
                    result = probe.check()
        except Exception as error:
            return error
        return _refused(result)

    # -- asyncio lifecycle ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the loop as a task of the running event loop (idempotent)."""
        if self.running:
            return
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()

        def waker() -> None:
            loop.call_soon_threadsafe(wake.set)

        self.aggregator.waker = waker
        self._task = loop.create_task(self._run(wake), name="brownout-recovery")

    async def stop(self) -> None:
        """Cancel the task and wait for it; transitions evaluate inline again."""
        task, self._task = self._task, None
        self.aggregator.waker = None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    async def _run(self, wake: asyncio.Event) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                logger.exception("brownout recovery step failed")
            # A transition wakes us early: evaluate only; the next heartbeat collects.
            try:
                await asyncio.wait_for(wake.wait(), self.heartbeat)
            except asyncio.TimeoutError:
                continue
            wake.clear()
            try:
                self.aggregator.evaluate()
            except Exception:
                logger.exception("brownout evaluation failed")


class RecoveryThread:
    """The recovery loop on a daemon thread, for sync apps."""

    def __init__(self, loop: RecoveryLoop) -> None:
        self.loop = loop
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.loop.aggregator.waker = self._wake.set
        self._thread = threading.Thread(target=self._run, name="brownout-recovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self.loop.aggregator.waker = None
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.loop.step_sync()
            except Exception:
                logger.exception("brownout recovery step failed")
            if self._wake.wait(self.loop.heartbeat) and not self._stop.is_set():
                self._wake.clear()
                try:
                    self.loop.aggregator.evaluate()
                except Exception:
                    logger.exception("brownout evaluation failed")


def _refused(result: object) -> BaseException | None:
    if result is False:
        return ConnectionError("probe returned False")
    return None


def _describe(error: BaseException | None) -> str:
    return "" if error is None else type(error).__name__
