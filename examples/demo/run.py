"""The demo from start to end: dependencies, the service, traffic, the chaos script, the
verdict. ``run(options)`` returns the exit status: 0 when every phase reached its level."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from examples.demo.chaos import Chaos
from examples.demo.dashboard import EventLog, Frame, LiveScreen
from examples.demo.dependencies import Dependencies
from examples.demo.phases import PHASES, PROFILES, Expectation, Phase, Profile
from examples.demo.service_process import ServiceProcess
from examples.demo.traffic import OUTCOMES, Traffic

POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Options:
    profile: str = "full"
    forever: bool = False
    database_url: str | None = None
    live: bool | None = None
    """Live screen (``None``: when stdout is a terminal)."""


@dataclass
class PhaseResult:
    phase: Phase
    reached_after: float | None
    level: str
    score: float
    counts: Counter[tuple[str, str]]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: no orphaned processes


def run(options: Options) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    profile = PROFILES[options.profile]
    live = sys.stdout.isatty() if options.live is None else options.live
    view: LiveScreen | EventLog = LiveScreen() if live else EventLog()
    with contextlib.ExitStack() as stack:
        dependencies = Dependencies.start(stack, options.database_url)
        print(f"brownout demo: cache: {dependencies.cache.description}", flush=True)
        admin_key = secrets.token_urlsafe(24)
        service = ServiceProcess(
            {**dependencies.environment(), "RETAIL_ADMIN_API_KEY": admin_key},
            dependencies.directory / "service.log",
        )
        stack.callback(service.stop)
        print("brownout demo: starting the retail service...", flush=True)
        try:
            service.start()
        except KeyboardInterrupt:
            return 130
        except RuntimeError as error:
            print(f"brownout demo: {error}", file=sys.stderr)
            return 1
        chaos = Chaos(
            dependencies.cache,
            dependencies.openai,
            dependencies.s3_proxy,
            service.url,
            admin_key,
            dependencies.database_proxy,
        )
        driver = Driver(service, chaos, profile, view, admin_key, options.forever)
        view.start()
        try:
            return asyncio.run(driver.run())
        except KeyboardInterrupt:
            view.event("interrupted: stopping the service and every stand-in")
            return 130
        finally:
            view.finish()


class Driver:
    def __init__(
        self,
        service: ServiceProcess,
        chaos: Chaos,
        profile: Profile,
        view: LiveScreen | EventLog,
        admin_key: str,
        forever: bool,
    ) -> None:
        self.service = service
        self.chaos = chaos
        self.profile = profile
        self.view = view
        self.admin_key = admin_key
        self.forever = forever
        self.status: dict[str, Any] | None = None
        self.started = time.monotonic()
        self.traffic = Traffic(service.url, profile.clients, profile.rate)
        self.phase_number = 1
        self.progress = "starting"
        self.links = {
            "health": f"{service.url}/health",
            "admin": f"{service.url}/brownout/admin/status  (X-API-Key: {admin_key})",
            "metrics": f"{service.url}/metrics",
        }

    async def run(self) -> int:
        for name, link in self.links.items():
            self.view.event(f"{name:<8}{link}")
        async with httpx.AsyncClient(base_url=self.service.url, timeout=5) as client:
            self.client = client
            watcher = asyncio.create_task(self._watch())
            self.traffic.start()
            try:
                results = await self._script()
                while self.forever:
                    results = await self._script()
            finally:
                await self.traffic.stop()
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        return self._verdict(results)

    async def _script(self) -> list[PhaseResult]:
        results = []
        for number, phase in enumerate(PHASES, 1):
            results.append(await self._phase(number, phase))
        return results

    async def _phase(self, number: int, phase: Phase) -> PhaseResult:
        self.phase_number = number
        self.traffic.tally.reset()
        self.view.event(f"phase {number}/{len(PHASES)} {phase.title}: {phase.story}")
        await asyncio.to_thread(phase.inject, self.chaos)
        began = time.monotonic()
        last = number == len(PHASES)
        deadline = self.profile.recovery_deadline_seconds if last else self.profile.deadline_seconds
        reached = await self._reach(phase.expect, deadline)
        status = self.status or {"level": "unknown", "score": 0.0}
        title = f"phase {number}/{len(PHASES)} {phase.title}"
        if reached is None:
            self.progress = f"MISSED after {deadline:.0f} s (level {status['level']})"
            self.view.event(
                f"✘ {title}: missed {phase.expect.description} within {deadline:.0f} s "
                f"(level {status['level']}, score {status['score']:.1f}: "
                f"{status.get('reason', '')})"
            )
        else:
            self.progress = f"reached after {reached - began:.1f} s"
            self.view.event(
                f"✔ {title}: reached {phase.expect.description} after {reached - began:.1f} s "
                f"(level {status['level']}, score {status['score']:.1f})"
            )
            await asyncio.sleep(self.profile.hold_seconds)
        counts = Counter(self.traffic.tally.counts)
        return PhaseResult(
            phase,
            None if reached is None else reached - began,
            str(status["level"]),
            float(status["score"]),
            counts,
        )

    async def _reach(self, expect: Expectation, deadline: float) -> float | None:
        self.progress = "waiting..."
        ends = time.monotonic() + deadline
        while time.monotonic() < ends:
            status = self.status
            if status is not None and expect.check(status):
                return time.monotonic()
            await asyncio.sleep(POLL_SECONDS)
        return None

    async def _watch(self) -> None:
        headers = {"X-API-Key": self.admin_key}
        while True:
            try:
                response = await self.client.get("/brownout/admin/status", headers=headers)
                if response.status_code == 200:
                    self.status = response.json()
            except httpx.HTTPError:
                pass
            self.view.show(self._frame())
            await asyncio.sleep(POLL_SECONDS)

    def _frame(self) -> Frame:
        return Frame(
            elapsed=time.monotonic() - self.started,
            phase_number=self.phase_number,
            phases=len(PHASES),
            phase=PHASES[self.phase_number - 1],
            progress=self.progress,
            status=self.status,
            counts=self.traffic.tally.counts,
            faults=self.chaos.active,
            links=self.links,
        )

    def _verdict(self, results: list[PhaseResult]) -> int:
        elapsed = time.monotonic() - self.started
        header = f"{'phase':<22}{'expected':<38}{'result':<16}{'level':<10}{'score':>6}"
        self.view.event("")
        self.view.event(header + "".join(f"{o:>9}" for o in OUTCOMES))
        for result in results:
            outcome = (
                "MISSED" if result.reached_after is None else f"in {result.reached_after:.1f} s"
            )
            totals = Counter[str]()
            for (_, kind), count in result.counts.items():
                totals[kind] += count
            self.view.event(
                f"{result.phase.title:<22}{result.phase.expect.description:<38}{outcome:<16}"
                f"{result.level:<10}{result.score:6.1f}"
                + "".join(f"{totals[o]:>9}" for o in OUTCOMES)
            )
        missed = [result for result in results if result.reached_after is None]
        if missed:
            self.view.event(
                f"brownout demo: {len(missed)} of {len(results)} phases missed their level "
                f"({elapsed:.0f} s); service log: {self.service.log}"
            )
            return 1
        self.view.event(
            f"brownout demo: all {len(results)} phases reached their expected level "
            f"in {elapsed:.0f} s"
        )
        return 0
