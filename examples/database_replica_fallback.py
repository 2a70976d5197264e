"""A service reading from a primary database, falling back to a read replica.

Two SQLite files stand in for the primary and its replica (which lags a little behind). A local
catalog API reads through a breaker on the primary. When a long maintenance transaction locks
the primary, reads come from the replica; after a few failures the breaker opens and the primary
is not even tried; writes are refused rather than sent to a read-only copy. When the lock is
released and the sleep window has passed (a ManualClock), a trial read closes the breaker.

Run: python examples/database_replica_fallback.py
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _loopback import Request, Response, http_service

from resilience import CircuitBreaker, CircuitBreakerOpenError
from resilience.testing import ManualClock


def create_database(path: Path, stock: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, stock INTEGER)")
        db.execute("INSERT INTO products VALUES (1, 'widget', ?)", (stock,))
    db.close()


class CatalogDB:
    """Reads go to the primary through a breaker, or to the replica when that fails."""

    def __init__(self, primary: Path, replica: Path, clock: ManualClock) -> None:
        self.primary = primary
        self.replica = replica
        self.breaker = CircuitBreaker(
            name="sqlite-primary",
            error_threshold=0.2,  # a database is critical: open early
            volume_threshold=5,
            sleep_window=10.0,
            half_open_requests=1,
            success_threshold=1.0,
            clock=clock,
        )

    @staticmethod
    def _query(path: Path, product_id: int) -> dict[str, Any]:
        # A short busy timeout: a locked primary fails fast instead of stalling the request.
        db = sqlite3.connect(path, timeout=0.05)
        try:
            row = db.execute(
                "SELECT name, stock FROM products WHERE id = ?", (product_id,)
            ).fetchone()
        finally:
            db.close()
        return {"name": row[0], "stock": row[1]}

    def read(self, product_id: int) -> dict[str, Any]:
        try:
            product = self.breaker.call(self._query, self.primary, product_id)
            return {**product, "source": "primary"}
        except CircuitBreakerOpenError:
            note = "breaker open, primary not tried"
        except sqlite3.OperationalError as exc:
            note = f"primary error: {exc}"
        product = self._query(self.replica, product_id)
        return {**product, "source": "replica", "note": note}

    def write_stock(self, product_id: int, stock: int) -> None:
        def update() -> None:
            db = sqlite3.connect(self.primary, timeout=0.05)
            try:
                with db:
                    db.execute("UPDATE products SET stock = ? WHERE id = ?", (stock, product_id))
            finally:
                db.close()

        self.breaker.call(update)


def catalog_api(db: CatalogDB) -> Any:
    def handle(request: Request) -> Response:
        product_id = int(request.path.split("/")[2])
        if request.method == "GET":
            return Response(200, db.read(product_id))
        try:
            db.write_stock(product_id, json.loads(request.body)["stock"])
        except (CircuitBreakerOpenError, sqlite3.OperationalError):
            return Response(503, {"error": "primary unavailable: writes refused"})
        return Response(204)

    return handle


def describe(response: httpx.Response) -> str:
    if response.status_code == 204:
        return "204 written to primary"
    data = response.json()
    if "error" in data:
        return f"{response.status_code} {data['error']}"
    line = f"{response.status_code} {data['name']} stock={data['stock']} from {data['source']}"
    if data["source"] == "replica":
        line += f" (fell back to replica: {data['note']})"
    return line


def main() -> None:
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as tmp:
        primary, replica = Path(tmp) / "primary.db", Path(tmp) / "replica.db"
        create_database(primary, stock=12)
        create_database(replica, stock=11)  # the replica lags one sale behind
        db = CatalogDB(primary, replica, clock)
        with http_service(catalog_api(db)) as api, httpx.Client(base_url=api.url) as client:
            print("GET  /products/1 ->", describe(client.get("/products/1")))

            print("-- a maintenance job takes an exclusive lock on the primary")
            maintenance = sqlite3.connect(primary, isolation_level=None)
            maintenance.execute("BEGIN EXCLUSIVE")
            for _ in range(5):
                print("GET  /products/1 ->", describe(client.get("/products/1")))
            print(f"breaker {db.breaker.name}: {db.breaker.state.value}")
            write = client.put("/products/1", json={"stock": 10})
            print("PUT  /products/1 ->", describe(write))

            print("-- the maintenance job commits; 10 s later a trial read goes to the primary")
            maintenance.execute("COMMIT")
            maintenance.close()
            clock.advance(10.0)
            print("GET  /products/1 ->", describe(client.get("/products/1")))
            print(f"breaker {db.breaker.name}: {db.breaker.state.value}")
            print("PUT  /products/1 ->", describe(client.put("/products/1", json={"stock": 10})))
            print("GET  /products/1 ->", describe(client.get("/products/1")))


if __name__ == "__main__":
    main()
