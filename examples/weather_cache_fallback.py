"""An external API behind a breaker and retries, falling back to the last good answer.

A local "weather API" answers until it starts failing with 503s. The client retries, its
breaker opens, and readings come from the cache until the API recovers and the breaker closes
again. Time is a ManualClock, so the 60-second sleep window passes instantly.

Run: python examples/weather_cache_fallback.py
"""

from __future__ import annotations

import httpx
from _loopback import Request, Response, http_service

from resilience import CircuitBreakerConfig, CircuitBreakerOpenError, RetryConfig
from resilience.httpx import ResilientTransport
from resilience.registry import BreakerRegistry
from resilience.testing import ManualClock

TEMPERATURES = {"paris": 18.5, "oslo": 7.0, "tokyo": 22.0}


class WeatherAPI:
    """The remote service: healthy until ``down`` is set."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self, request: Request) -> Response:
        if self.down:
            return Response(503, {"error": "maintenance"})
        city = request.path.rsplit("/", 1)[-1]
        if city not in TEMPERATURES:
            return Response(404, {"error": f"unknown city {city}"})
        return Response(200, {"city": city, "temp_c": TEMPERATURES[city]})


class WeatherService:
    """Live readings when possible, the last good reading when not."""

    def __init__(self, base_url: str, clock: ManualClock) -> None:
        self.registry = BreakerRegistry(
            CircuitBreakerConfig(
                error_threshold=0.4, volume_threshold=4, sleep_window=60.0, clock=clock
            )
        )
        retry = RetryConfig(max_attempts=2, initial_delay=0.5, jitter=False, clock=clock)
        self.client = httpx.Client(
            base_url=base_url,
            transport=ResilientTransport(registry=self.registry, retry=retry),
        )
        self.cache: dict[str, float] = {}

    def temperature(self, city: str) -> str:
        try:
            response = self.client.get(f"/weather/{city}")
            response.raise_for_status()
        except CircuitBreakerOpenError:
            reason = "circuit open"
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500:
                return f"{city}: {exc.response.json()['error']} (client error, not cached)"
            reason = f"HTTP {exc.response.status_code} after retries"
        except httpx.TransportError as exc:
            reason = type(exc).__name__
        else:
            self.cache[city] = response.json()["temp_c"]
            return f"{city}: {self.cache[city]} C (live)"
        if city in self.cache:
            return f"{city}: {self.cache[city]} C (served from cache: {reason})"
        return f"{city}: unavailable ({reason}, nothing cached)"

    def breaker_state(self) -> str:
        ((_, breaker),) = self.registry.items()
        return breaker.state.value


def main() -> None:
    clock = ManualClock()
    api = WeatherAPI()
    with http_service(api) as server:
        weather = WeatherService(server.url, clock)
        print(weather.temperature("paris"))
        print(weather.temperature("oslo"))
        print(weather.temperature("atlantis"))

        print("-- the weather API goes down for maintenance")
        api.down = True
        print(weather.temperature("paris"))
        print(f"breaker: {weather.breaker_state()}")
        calls_before = server.hits
        print(weather.temperature("oslo"))
        print(weather.temperature("tokyo"))
        print(f"API calls while the breaker was open: {server.hits - calls_before}")

        print("-- the API is back; 60 s later the breaker lets trial calls through")
        api.down = False
        clock.advance(60.0)
        for city in ("tokyo", "paris", "oslo"):
            print(weather.temperature(city))
        print(f"breaker: {weather.breaker_state()}")
        weather.client.close()


if __name__ == "__main__":
    main()
