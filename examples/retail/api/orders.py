"""Stock updates and orders: writes that need the database."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from brownout.middleware.fastapi import features
from examples.retail.problems import problem
from examples.retail.service import Retail, retail
from examples.retail.store import OrderLine, OutOfStock, UnknownProduct

router = APIRouter(tags=["orders"])

Service = Annotated[Retail, Depends(retail)]

WRITE = features(requires=["write"], components=["database"])


class StockChange(BaseModel):
    delta: int = Field(ge=-100_000, le=100_000)


class OrderLineIn(BaseModel):
    product_id: int = Field(ge=1)
    quantity: int = Field(ge=1, le=1000)


class OrderIn(BaseModel):
    items: list[OrderLineIn] = Field(min_length=1, max_length=50)


@router.post("/products/{product_id}/stock", response_model=None, dependencies=[WRITE])
def change_stock(service: Service, product_id: int, change: StockChange) -> Any:
    try:
        stock = service.store.adjust_stock(product_id, change.delta)
    except UnknownProduct:
        return problem(404, f"no product {product_id}")
    except OutOfStock as error:
        return problem(409, f"only {error.available} in stock")
    service.cache.forget(f"product:{product_id}")
    return {"id": product_id, "stock": stock}


@router.post("/orders", status_code=201, response_model=None, dependencies=[WRITE])
def place_order(service: Service, order: OrderIn) -> Any:
    lines = [OrderLine(line.product_id, line.quantity) for line in order.items]
    try:
        placed = service.store.place_order(lines)
    except UnknownProduct as error:
        return problem(422, f"no product {error.product_id}")
    except OutOfStock as error:
        return problem(409, f"product {error.product_id}: only {error.available} in stock")
    service.cache.forget(*(f"product:{line.product_id}" for line in lines))
    return placed
