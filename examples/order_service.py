"""An order workflow over three services, each behind its own breaker, with compensation.

Inventory, payment and shipping are three local services. One registry holds a breaker per
service (the key function names the service from its port; a pattern makes the payment breaker
stricter). Placing an order reserves stock, charges the card, then schedules shipping in the
background with patient retries. When the charge fails, the reservation is released again; when
the payment breaker is open, orders fail fast without touching the payment service, while the
inventory breaker stays closed: the failures are not its business.

Run: python examples/order_service.py
"""

from __future__ import annotations

import threading

import httpx
from _loopback import Request, Response, http_service

from resilience import CircuitBreakerConfig, CircuitBreakerOpenError, RetryConfig
from resilience.httpx import ResilientTransport
from resilience.registry import BreakerRegistry
from resilience.testing import ManualClock


class Inventory:
    def __init__(self) -> None:
        self.reserved: set[str] = set()

    def __call__(self, request: Request) -> Response:
        order = request.path.rsplit("/", 1)[-1]
        if request.method == "PUT":
            self.reserved.add(order)
            return Response(200, {"reserved": order})
        self.reserved.discard(order)
        return Response(204)


class Payment:
    def __init__(self) -> None:
        self.failing = False
        self.charges = 0

    def __call__(self, request: Request) -> Response:
        self.charges += 1
        if self.failing:
            return Response(503, {"error": "card processor unreachable"})
        return Response(201, {"charged": True})


class Shipping:
    def __init__(self) -> None:
        self.failures_left = 0

    def __call__(self, request: Request) -> Response:
        if self.failures_left > 0:
            self.failures_left -= 1
            return Response(502, {"error": "label printer offline"})
        return Response(200, {"scheduled": request.path.rsplit("/", 1)[-1]})


class OrderService:
    def __init__(self, urls: dict[str, str], clock: ManualClock) -> None:
        names = {httpx.URL(url).port: name for name, url in urls.items()}
        self.urls = urls
        self.registry = BreakerRegistry(
            CircuitBreakerConfig(volume_threshold=2, sleep_window=30.0, clock=clock),
            patterns={
                "payment": {"error_threshold": 0.3, "half_open_requests": 1},  # money: strict
                "shipping": {"volume_threshold": 10},  # eventual: tolerate a few failures
            },
        )

        def service_of(request: httpx.Request) -> str:
            return names[request.url.port]

        # Critical steps: one quick retry at most (and POST /charges is never retried).
        quick = RetryConfig(max_attempts=2, initial_delay=0.2, jitter=False, clock=clock)
        # Shipping may happen later: keep trying for a while.
        patient = RetryConfig(max_attempts=5, initial_delay=1.0, jitter=False, clock=clock)
        self.client = httpx.Client(
            transport=ResilientTransport(registry=self.registry, retry=quick, key=service_of)
        )
        self.shipping_client = httpx.Client(
            transport=ResilientTransport(registry=self.registry, retry=patient, key=service_of)
        )
        self.shipped: dict[str, int] = {}
        self.background: list[threading.Thread] = []

    def place(self, order: str) -> str:
        try:
            self.client.put(f"{self.urls['inventory']}/reservations/{order}").raise_for_status()
        except (CircuitBreakerOpenError, httpx.HTTPError) as exc:
            return f"order {order}: rejected, inventory unavailable ({type(exc).__name__})"
        try:
            charge = self.client.post(f"{self.urls['payment']}/charges", json={"order": order})
            charge.raise_for_status()
        except (CircuitBreakerOpenError, httpx.HTTPError) as exc:
            self.client.delete(f"{self.urls['inventory']}/reservations/{order}")
            why = (
                "payment circuit open"
                if isinstance(exc, CircuitBreakerOpenError)
                else (f"payment failed: {describe(exc)}")
            )
            return f"order {order}: {why}; compensated: released the inventory reservation"
        worker = threading.Thread(target=self._ship, args=(order,))
        worker.start()
        self.background.append(worker)
        return f"order {order}: confirmed, shipping scheduled in the background"

    def _ship(self, order: str) -> None:
        # The transport retries failed attempts itself (PUT is idempotent); this thread only
        # keeps the wait off the customer's request.
        response = self.shipping_client.put(f"{self.urls['shipping']}/shipments/{order}")
        self.shipped[order] = response.status_code

    def wait_for_shipping(self) -> None:
        for worker in self.background:
            worker.join(timeout=10)
        self.background.clear()

    def states(self) -> str:
        held = sorted(self.registry.items())
        return ", ".join(f"{key}={breaker.state.value}" for key, breaker in held)


def describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


def main() -> None:
    clock = ManualClock()
    inventory, payment, shipping = Inventory(), Payment(), Shipping()
    with (
        http_service(inventory) as inv,
        http_service(payment) as pay,
        http_service(shipping) as ship,
    ):
        orders = OrderService(
            {"inventory": inv.url, "payment": pay.url, "shipping": ship.url}, clock
        )
        print(orders.place("A-1"))
        orders.wait_for_shipping()

        print("-- the card processor goes down")
        payment.failing = True
        print(orders.place("A-2"))
        print(f"payment calls for A-2: {payment.charges - 1} (a POST is not retried)")
        charges_before = payment.charges
        print(orders.place("A-3"))
        print(f"payment service calls for A-3: {payment.charges - charges_before}")
        print(f"breakers: {orders.states()}")
        print(f"reservations held: {sorted(inventory.reserved)}")

        print("-- payment recovers; 30 s later; the label printer fails twice")
        payment.failing = False
        clock.advance(30.0)
        shipping.failures_left = 2
        hits_before = ship.hits
        print(orders.place("A-4"))
        orders.wait_for_shipping()
        print(
            f"shipment for A-4 scheduled after {ship.hits - hits_before} attempts "
            f"(status {orders.shipped['A-4']})"
        )
        print(f"breakers: {orders.states()}")
        print(f"reservations held: {sorted(inventory.reserved)}")
        orders.client.close()
        orders.shipping_client.close()


if __name__ == "__main__":
    main()
