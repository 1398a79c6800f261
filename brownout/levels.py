"""Degradation levels, best to worst."""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    """How much of the service is on. Higher is worse; ``brownout.level`` exports the value."""

    OPTIMAL = 0
    DEGRADED = 1
    LIMITED = 2
    MINIMAL = 3
    EMERGENCY = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Level) -> Level:
        """Accept a level, its name in any case, or its number."""
        if isinstance(value, Level):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str):
            name = value.strip().upper()
            if name in cls.__members__:
                return cls[name]
        choices = ", ".join(level.label for level in cls)
        raise ValueError(f"unknown level {value!r}; use one of: {choices} (or 0-4)")
