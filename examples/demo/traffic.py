"""Steady client traffic against the retail API, tallied by what happened to it.

A few concurrent clients at a bounded rate, a mix of browsing, writes, image uploads and
batch work. Each response is tallied per route group: ``served``, ``degraded`` (the
``Brownout-Degraded`` header, or the AI part left out), ``rejected`` (503: shed with
``Retry-After``) or ``error`` (anything else that failed: what brownout should prevent).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

OUTCOMES = ("served", "degraded", "rejected", "error")


@dataclass(frozen=True)
class Route:
    group: str
    feature: str
    weight: int


ROUTES = (
    Route("browse", "read", 30),
    Route("detail+ai", "read", 30),
    Route("search+ai", "read", 8),
    Route("stock", "write", 8),
    Route("orders", "write", 8),
    Route("images", "write", 10),
    Route("import", "batch", 3),
    Route("export", "batch", 3),
)

_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.total = 0

    def add(self, group: str, outcome: str) -> None:
        self.counts[group, outcome] += 1
        self.total += 1

    def reset(self) -> Counter[tuple[str, str]]:
        counts, self.counts, self.total = self.counts, Counter(), 0
        return counts


class Traffic:
    def __init__(self, base_url: str, clients: int, rate: float, seed: int = 7) -> None:
        self.base_url = base_url
        self.clients = clients
        self.interval = clients / rate
        self.tally = Tally()
        self.random = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []
        self._imports = 0

    def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=10.0)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.clients)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def _worker(self) -> None:
        weights = [route.weight for route in ROUTES]
        while True:
            started = time.monotonic()
            route = self.random.choices(ROUTES, weights)[0]
            try:
                response = await self._send(route.group)
                outcome = classify(response)
            except httpx.HTTPError:
                outcome = "error"
            self.tally.add(route.group, outcome)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _send(self, group: str) -> httpx.Response:
        client, pick = self._client, self.random.randint(1, 200)
        if group == "browse":
            return await client.get("/products", params={"limit": 20, "offset": pick % 10 * 20})
        if group == "detail+ai":
            return await client.get(f"/products/{pick}")
        if group == "search+ai":
            query = self.random.choice(("lamp", "desk", "garden", "tent"))
            return await client.get("/products", params={"q": query, "summary": "true"})
        if group == "stock":
            return await client.post(f"/products/{pick}/stock", json={"delta": 5})
        if group == "orders":
            return await client.post(
                "/orders", json={"items": [{"product_id": pick, "quantity": 1}]}
            )
        if group == "images":
            headers = {"Content-Type": "image/png"}
            return await client.put(f"/products/{pick}/image", content=_PNG, headers=headers)
        if group == "import":
            self._imports += 1
            rows = [_product(self._imports, n) for n in range(40)]
            return await client.post("/products/import", json={"products": rows})
        return await client.get("/products/export.csv")


def _product(batch: int, number: int) -> dict[str, Any]:
    return {
        "sku": f"IMP-{number:03d}",
        "name": f"imported item {number} (batch {batch})",
        "category": "imported",
        "price_cents": 100 + number,
        "stock": 10,
    }


def classify(response: httpx.Response) -> str:
    if response.status_code == 503:
        return "rejected"
    if response.status_code >= 500:
        return "error"
    if "brownout-degraded" in response.headers:
        return "degraded"
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        ai = body.get("ai") if isinstance(body, dict) else None
        if isinstance(ai, dict) and ai.get("status") != "ok":
            return "degraded"
    return "served"
