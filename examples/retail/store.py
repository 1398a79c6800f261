"""The catalogue, stock and orders in the database (SQLAlchemy Core)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

products = Table(
    "retail_products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("category", String(50), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("price_cents", Integer, nullable=False),
    Column("stock", Integer, nullable=False, default=0),
    Column("image_key", String(200)),
)

orders = Table(
    "retail_orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", DateTime, nullable=False, server_default=func.now()),
    Column("total_cents", Integer, nullable=False),
)

order_lines = Table(
    "retail_order_lines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", ForeignKey("retail_orders.id"), nullable=False),
    Column("product_id", ForeignKey("retail_products.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price_cents", Integer, nullable=False),
)

PUBLIC_COLUMNS = ("id", "sku", "name", "category", "description", "price_cents", "stock")
EXPORT_COLUMNS = (*PUBLIC_COLUMNS, "image_key")

_CATEGORIES = ("kitchen", "garden", "office", "toys", "outdoor", "lighting")
_ADJECTIVES = ("compact", "sturdy", "classic", "bright", "quiet", "foldable", "smart")
_NOUNS = ("kettle", "lamp", "chair", "planter", "desk", "torch", "blender", "tent")


class OutOfStock(Exception):
    def __init__(self, product_id: int, wanted: int, available: int) -> None:
        super().__init__(f"product {product_id}: {wanted} wanted, {available} in stock")
        self.product_id = product_id
        self.wanted = wanted
        self.available = available


class UnknownProduct(LookupError):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"no product {product_id}")
        self.product_id = product_id


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int


def _public(row: Any) -> dict[str, Any]:
    return {name: row._mapping[name] for name in PUBLIC_COLUMNS}


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self, seed: int) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            if connection.execute(select(func.count()).select_from(products)).scalar():
                return
            generator = random.Random(42)  # the same catalogue every time
            rows = [
                {
                    "sku": f"SKU-{number:05d}",
                    "name": f"{generator.choice(_ADJECTIVES)} {generator.choice(_NOUNS)}",
                    "category": generator.choice(_CATEGORIES),
                    "description": "",
                    "price_cents": generator.randrange(199, 19_999),
                    "stock": generator.randrange(50, 500),
                }
                for number in range(1, seed + 1)
            ]
            if rows:
                connection.execute(insert(products), rows)

    def list_products(self, query: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        statement = select(products).order_by(products.c.id).limit(limit).offset(offset)
        if query:
            pattern = f"%{query}%"
            statement = statement.where(
                or_(products.c.name.ilike(pattern), products.c.category.ilike(pattern))
            )
        with self.engine.connect() as connection:
            return [_public(row) for row in connection.execute(statement)]

    def product(self, product_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(select(products).where(products.c.id == product_id)).first()
        if row is None:
            raise UnknownProduct(product_id)
        return _public(row)

    def image_key(self, product_id: int) -> str | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(products.c.image_key).where(products.c.id == product_id)
            ).first()
        if row is None:
            raise UnknownProduct(product_id)
        key: str | None = row.image_key
        return key

    def set_image(self, product_id: int, key: str) -> None:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(products).where(products.c.id == product_id).values(image_key=key)
            )
            if result.rowcount == 0:
                raise UnknownProduct(product_id)

    def adjust_stock(self, product_id: int, delta: int) -> int:
        with self.engine.begin() as connection:
            row = connection.execute(
                select(products.c.stock).where(products.c.id == product_id)
            ).first()
            if row is None:
                raise UnknownProduct(product_id)
            if row.stock + delta < 0:
                raise OutOfStock(product_id, -delta, row.stock)
            connection.execute(
                update(products)
                .where(products.c.id == product_id)
                .values(stock=products.c.stock + delta)
            )
            return int(row.stock + delta)

    def place_order(self, lines: Sequence[OrderLine]) -> dict[str, Any]:
        with self.engine.begin() as connection:
            total = 0
            priced = []
            for line in lines:
                row = connection.execute(
                    select(products.c.stock, products.c.price_cents).where(
                        products.c.id == line.product_id
                    )
                ).first()
                if row is None:
                    raise UnknownProduct(line.product_id)
                if row.stock < line.quantity:
                    raise OutOfStock(line.product_id, line.quantity, row.stock)
                # Guarded on the stock read above, so two orders racing for the last
                # unit cannot both take it.
                taken = connection.execute(
                    update(products)
                    .where(products.c.id == line.product_id, products.c.stock >= line.quantity)
                    .values(stock=products.c.stock - line.quantity)
                )
                if taken.rowcount == 0:
                    raise OutOfStock(line.product_id, line.quantity, 0)
                total += row.price_cents * line.quantity
                priced.append((line, row.price_cents))
            order_id = connection.execute(
                insert(orders).values(total_cents=total).returning(orders.c.id)
            ).scalar_one()
            connection.execute(
                insert(order_lines),
                [
                    {
                        "order_id": order_id,
                        "product_id": line.product_id,
                        "quantity": line.quantity,
                        "price_cents": price,
                    }
                    for line, price in priced
                ],
            )
        return {"id": order_id, "total_cents": total, "lines": len(priced)}

    def import_chunk(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or update products by SKU in one transaction; returns rows written."""
        written = 0
        with self.engine.begin() as connection:
            for row in rows:
                values = {
                    "name": row["name"],
                    "category": row["category"],
                    "description": row.get("description", ""),
                    "price_cents": row["price_cents"],
                    "stock": row["stock"],
                }
                result = connection.execute(
                    update(products).where(products.c.sku == row["sku"]).values(**values)
                )
                if result.rowcount == 0:
                    connection.execute(insert(products).values(sku=row["sku"], **values))
                written += 1
        return written

    def export_rows(self, chunk: int) -> Iterator[list[dict[str, Any]]]:
        """Every product, ``chunk`` rows per query (keyset pagination)."""
        after = 0
        while True:
            statement = (
                select(*(products.c[name] for name in EXPORT_COLUMNS))
                .where(products.c.id > after)
                .order_by(products.c.id)
                .limit(chunk)
            )
            with self.engine.connect() as connection:
                rows = [dict(row._mapping) for row in connection.execute(statement)]
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]
