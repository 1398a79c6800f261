"""Bulk import and CSV export: batch work, sized by the level's batch multiplier."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from brownout.middleware import BrownoutState
from brownout.middleware.fastapi import features
from examples.retail.service import Retail, retail
from examples.retail.store import EXPORT_COLUMNS

router = APIRouter(tags=["bulk"])

Service = Annotated[Retail, Depends(retail)]


class ProductIn(BaseModel):
    sku: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=50)
    description: str = Field(default="", max_length=2000)
    price_cents: int = Field(ge=0, le=10_000_000)
    stock: int = Field(ge=0, le=1_000_000)


class ImportIn(BaseModel):
    products: list[ProductIn] = Field(min_length=1, max_length=10_000)


def chunk_size(base: int, state: BrownoutState | None) -> int:
    """Smaller transactions when the service is degraded: each holds the database for
    less time, so interactive requests wait less behind batch work."""
    multiplier = 1.0 if state is None else state.batch_multiplier
    return max(1, math.ceil(base * multiplier))


@router.post("/products/import")
def import_products(
    service: Service,
    body: ImportIn,
    state: Annotated[
        BrownoutState | None, features(requires=["batch", "write"], components=["database"])
    ],
) -> dict[str, Any]:
    size = chunk_size(service.config.import_chunk, state)
    rows = [product.model_dump() for product in body.products]
    written = chunks = 0
    for start in range(0, len(rows), size):
        written += service.store.import_chunk(rows[start : start + size])
        chunks += 1
    return {"written": written, "chunks": chunks, "chunk_size": size}


@router.get("/products/export.csv", response_model=None)
def export_products(
    service: Service,
    state: Annotated[BrownoutState | None, features(requires=["batch", "read"])],
) -> StreamingResponse:
    size = chunk_size(service.config.import_chunk, state)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, EXPORT_COLUMNS)
        writer.writeheader()
        for rows in service.store.export_rows(size):
            writer.writerows(rows)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="products.csv"'},
    )
