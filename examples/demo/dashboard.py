"""The terminal view: a live ANSI screen on a terminal, plain event lines otherwise.

No dependencies: cursor-home plus erase-line escapes redraw the screen in place.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from examples.demo.phases import Phase
from examples.demo.traffic import OUTCOMES, ROUTES

_RESET, _BOLD, _DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
_LEVEL_COLOURS = {
    "optimal": "\x1b[1;32m",
    "degraded": "\x1b[1;33m",
    "limited": "\x1b[1;35m",
    "minimal": "\x1b[1;31m",
    "emergency": "\x1b[1;37;41m",
}
_STATE_COLOURS = {"healthy": "\x1b[32m", "degraded": "\x1b[33m", "failing": "\x1b[35m",
                  "critical": "\x1b[31m"}  # fmt: skip
_BREAKER_COLOURS = {"closed": "\x1b[32m", "half_open": "\x1b[33m", "open": "\x1b[31m"}


@dataclass
class Frame:
    """Everything one redraw shows."""

    elapsed: float
    phase_number: int
    phases: int
    phase: Phase
    progress: str
    """How the phase is doing: waiting for its level, reached, or missed."""
    status: dict[str, Any] | None
    counts: Counter[tuple[str, str]]
    faults: dict[str, str]
    links: dict[str, str] = field(default_factory=dict)


def _bar(fraction: float, width: int = 20, full: str = "█", empty: str = "░") -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return full * filled + empty * (width - filled)


def _paint(text: str, colour: str) -> str:
    return f"{colour}{text}{_RESET}"


def render(frame: Frame) -> list[str]:
    lines = [
        f"{_BOLD}brownout demo{_RESET} · retail inventory API"
        f"{'':>30}{_DIM}{frame.elapsed:6.1f} s{_RESET}",
    ]
    lines += [f"  {name:<8}{link}" for name, link in frame.links.items()]
    done = (frame.phase_number - 1) / frame.phases
    lines += [
        "",
        f"phases  [{_bar(done, 24, '■', '□')}]  {frame.phase_number}/{frame.phases} "
        f"{_BOLD}{frame.phase.title}{_RESET}",
        f"        {frame.phase.story}",
        f"        expect {frame.phase.expect.description}: {frame.progress}",
        "",
    ]
    status = frame.status
    if status is None:
        lines.append("level   (waiting for the service)")
    else:
        level = status["level"]
        multiplier = status.get("batch_multiplier", 0)
        off = sorted(
            {"read", "write", "cache_read", "cache_write", "ai", "batch"} - set(status["enabled"])
        )
        lines += [
            f"level   {_paint(f' {level.upper():<9} ', _LEVEL_COLOURS.get(level, ''))}"
            f"  score {status['score']:5.1f}   {_DIM}{status.get('reason', '')}{_RESET}",
            f"        batch x{multiplier:.2f}   off: {', '.join(off) or 'nothing'}",
            "",
            f"{_DIM}component  health                  state      breakers{_RESET}",
        ]
        components = status.get("control", {}).get("components", {})
        for name in sorted(components):
            component = components[name]
            state = component["state"]
            breakers = ", ".join(
                _paint(b["state"], _BREAKER_COLOURS.get(b["state"], ""))
                + (f" ({b['retry_after']:.1f} s)" if b["state"] == "open" and b["retry_after"]
                   else "")
                for b in component["breakers"]
            )  # fmt: skip
            lines.append(
                f"{name:<10} {_bar(component['score'] / 100, 10)} {component['score']:5.1f}  "
                f"{_paint(f'{state:<9}', _STATE_COLOURS.get(state, ''))}  {breakers}"
            )
    lines += ["", "faults  " + ("; ".join(f"{k}: {v}" for k, v in frame.faults.items()) or "none")]
    lines += [
        "",
        f"{_DIM}traffic this phase       {'  '.join(f'{o:>8}' for o in OUTCOMES)}{_RESET}",
    ]
    for route in ROUTES:
        cells = "  ".join(f"{frame.counts[route.group, o]:>8}" for o in OUTCOMES)
        lines.append(f"  {route.group:<10} ({route.feature:<5})  {cells}")
    return lines


class LiveScreen:
    """Redraws in place on a terminal; prints event lines below when the demo ends."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._events: list[str] = []

    def show(self, frame: Frame) -> None:
        lines = [*render(frame), "", *self._events[-6:]]
        text = "\x1b[H" + "".join(f"{line}\x1b[K\n" for line in lines) + "\x1b[J"
        self.out.write(text)
        self.out.flush()

    def event(self, line: str) -> None:
        self._events.append(line)

    def start(self) -> None:
        self.out.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear the screen

    def finish(self) -> None:
        self.out.write("\x1b[?25h\n" + "".join(f"{line}\n" for line in self._events))
        self.out.flush()


class EventLog:
    """For pipes and CI logs: one line per event, no escapes."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def show(self, frame: Frame) -> None:
        return None

    def event(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def start(self) -> None:
        return None

    def finish(self) -> None:
        return None
