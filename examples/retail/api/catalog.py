"""Browsing: product list and search, product detail. Reads, served from the cache when
it can be, from the database when not, with AI text when ``ai`` is on."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from brownout.middleware import BrownoutState
from brownout.middleware.fastapi import features
from examples.retail.cache import query_key
from examples.retail.problems import problem
from examples.retail.service import Retail, retail
from examples.retail.store import UnknownProduct

router = APIRouter(tags=["catalog"])

Service = Annotated[Retail, Depends(retail)]
# Reads that can do without the cache and the AI text.
Browse = Annotated[
    BrownoutState | None,
    features(requires=["read"], optional=["cache_read", "cache_write", "ai"]),
]


@router.get("/products")
def list_products(
    service: Service,
    state: Browse,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    summary: bool = False,
) -> dict[str, Any]:
    key = query_key("products", q=q, limit=limit, offset=offset)
    items, source = service.cache.fetch(
        key, lambda: service.store.list_products(q, limit, offset), state
    )
    body: dict[str, Any] = {"items": items, "source": source}
    if summary:
        body["ai"] = service.assistant.summarise([item["name"] for item in items], state).as_dict()
    return body


@router.get("/products/{product_id}", response_model=None)
def product_detail(
    service: Service,
    product_id: int,
    state: Browse,
) -> Any:
    try:
        product, source = service.cache.fetch(
            f"product:{product_id}", lambda: service.store.product(product_id), state
        )
    except UnknownProduct:
        return problem(404, f"no product {product_id}")
    ai = service.assistant.describe(product, state)
    return {"product": product, "source": source, "ai": ai.as_dict()}
