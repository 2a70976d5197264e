"""A registry of circuit breakers keyed by name: one breaker per host, endpoint or tenant.

``BreakerRegistry.get(key)`` returns the one breaker for ``key``, creating it on first use from
the registry's default config (``name`` set to the key) with any matching pattern overrides
applied. Keys often come from untrusted input (the host of a URL a user supplied), so the registry
is bounded: past ``max_breakers`` it evicts the least recently used breaker that is CLOSED, not
forced and has nothing in flight. A breaker that is OPEN, HALF_OPEN, forced or busy is never
evicted: forgetting it would forget that its dependency is failing.

When no breaker is evictable the registry grows past ``max_breakers`` rather than refusing the
key (a refused key would make a healthy new host unreachable because others are failing). It logs
one WARNING when it first overflows, and shrinks back to the bound as breakers become evictable,
evicting up to two per new key. Beyond the bound, memory is proportional to the number of
breakers that are open or busy, which is the information the breakers exist to keep.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ._validate import check_int, check_name
from .breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from .errors import ConfigurationError
from .observe import StateListener

__all__ = ["BreakerRegistry"]

_OWNER = "BreakerRegistry"
# How many least-recently-used entries one insertion inspects for an evictable breaker. Entries
# that cannot be evicted are moved to the recent end, so a registry crowded with open breakers
# costs a bounded scan per new key and the next scan looks at other entries.
_SCAN_LIMIT = 32


def _same(current: Any, wanted: Any) -> bool:
    """Compares a config value with an override as the config would store it."""
    if isinstance(wanted, timedelta):
        wanted = wanted.total_seconds()
    if callable(wanted) or callable(current):
        return current is wanted
    return bool(current == wanted)


class BreakerRegistry:
    """Thread-safe, bounded map from keys to circuit breakers.

    Example::

        registry = BreakerRegistry(
            CircuitBreakerConfig(error_threshold=0.5),
            patterns={"payments.*": {"error_threshold": 0.2}},
        )
        registry.get("payments.eu").call(charge, order)

    Args:
        default_config: settings of every breaker it creates (``name`` is replaced by the key).
            None uses ``CircuitBreakerConfig()``.
        max_breakers: the number of breakers kept before least recently used CLOSED, idle ones
            are evicted (an int ``>= 1``). See the module docstring for what happens when none is
            evictable.
        patterns: ``{fnmatch pattern: {field: value}}`` overrides for keys matching the pattern
            (case-sensitive, ``*``, ``?`` and ``[...]``). Every matching pattern applies, in the
            mapping's order, so a later pattern overrides an earlier one's fields. Each is
            validated at construction.

    Raises:
        TypeError: a wrong type for an argument, or an unknown config field in ``patterns``.
        ValueError: ``max_breakers < 1`` or an invalid override value.
    """

    __slots__ = (
        "_breakers",
        "_default",
        "_listeners",
        "_lock",
        "_logger",
        "_max",
        "_overflowing",
        "_patterns",
    )

    def __init__(
        self,
        default_config: CircuitBreakerConfig | None = None,
        *,
        max_breakers: int = 10_000,
        patterns: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if default_config is None:
            default_config = CircuitBreakerConfig()
        elif not isinstance(default_config, CircuitBreakerConfig):
            raise TypeError(
                f"{_OWNER}.default_config must be a CircuitBreakerConfig, got {default_config!r}"
            )
        self._max = check_int(_OWNER, "max_breakers", max_breakers, low=1)
        self._default = default_config
        compiled: list[tuple[str, dict[str, Any]]] = []
        for pattern, fields in (patterns or {}).items():
            if not isinstance(pattern, str) or not isinstance(fields, Mapping):
                raise TypeError(
                    f"{_OWNER}.patterns must map str patterns to field mappings, "
                    f"got {pattern!r}: {fields!r}"
                )
            if "name" in fields:
                raise ConfigurationError(
                    f"{_OWNER}.patterns[{pattern!r}] may not set 'name' (it is the key)"
                )
            default_config.replace(**fields)  # validates the fields and values now
            compiled.append((pattern, dict(fields)))
        self._patterns: tuple[tuple[str, dict[str, Any]], ...] = tuple(compiled)
        self._breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()
        self._lock = threading.Lock()
        logger = default_config.logger
        self._logger: logging.Logger = (
            logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        )
        self._overflowing = False
        self._listeners: tuple[StateListener, ...] = ()

    # ----- reading -----

    @property
    def default_config(self) -> CircuitBreakerConfig:
        """The settings every created breaker starts from."""
        return self._default

    @property
    def max_breakers(self) -> int:
        """The bound past which idle CLOSED breakers are evicted."""
        return self._max

    def __len__(self) -> int:
        with self._lock:
            return len(self._breakers)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._breakers

    def __repr__(self) -> str:
        return f"BreakerRegistry(breakers={len(self)}, max_breakers={self._max})"

    def items(self) -> list[tuple[str, CircuitBreaker]]:
        """A snapshot of ``(key, breaker)`` pairs, least recently used first."""
        with self._lock:
            return list(self._breakers.items())

    def metrics(self) -> dict[str, dict[str, Any]]:
        """``{key: breaker.metrics()}`` for every breaker held (read outside the lock)."""
        return {key: breaker.metrics() for key, breaker in self.items()}

    def config_for(self, key: str, **overrides: Any) -> CircuitBreakerConfig:
        """The config a breaker for ``key`` gets: default, matching patterns, then ``overrides``.

        Raises:
            TypeError, ValueError: a key that is not a non-empty str, or an invalid override.
        """
        check_name(_OWNER, "key", key)
        changes: dict[str, Any] = {}
        for pattern, fields in self._patterns:
            if fnmatch.fnmatchcase(key, pattern):
                changes.update(fields)
        changes.update(overrides)
        changes["name"] = key
        return self._default.replace(**changes)

    def add_state_listener(self, listener: StateListener) -> None:
        """Calls ``listener(name, from_state, to_state)`` on every transition of every breaker.

        It is added to the breakers held now and to every breaker created later (a listener
        added to one breaker directly is lost if that breaker is evicted and created again).
        """
        if not callable(listener):
            raise TypeError(f"state listener must be callable, got {listener!r}")
        with self._lock:
            self._listeners = (*self._listeners, listener)
            held = list(self._breakers.values())
        for breaker in held:
            breaker.add_state_listener(listener)

    # ----- the one operation that matters -----

    def get(self, key: str, **overrides: Any) -> CircuitBreaker:
        """Returns the breaker for ``key``, creating it on first use.

        However many threads ask for the same key at once, they all get the same instance.
        ``overrides`` (``CircuitBreakerConfig`` fields) apply when the breaker is created; asking
        again with an override that differs from the existing breaker's config is an error
        rather than a silent no-op.

        Args:
            key: the breaker's identity and name (a non-empty string).
            **overrides: config fields for this key, applied after the matching patterns.

        Raises:
            ConfigurationError: the breaker exists with a different value for an override, or
                ``name`` is overridden (the key is the name).
            TypeError, ValueError: an invalid key or override when the breaker is created.
        """
        if "name" in overrides:
            raise ConfigurationError(f"{_OWNER}.get() may not override 'name' (it is the key)")
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is not None:
                self._breakers.move_to_end(key)
        if breaker is not None:
            if overrides:
                self._check_overrides(breaker, overrides)
            return breaker
        config = self.config_for(key, **overrides)  # validated outside the lock
        overflow: int | None = None
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is not None:  # another thread created it meanwhile
                self._breakers.move_to_end(key)
            else:
                overflow = self._make_room()
                breaker = CircuitBreaker(config)
                for listener in self._listeners:
                    breaker.add_state_listener(listener)
                self._breakers[key] = breaker
        if overflow is not None:  # logged outside the lock: a handler may call back in
            self._logger.warning(
                "breaker registry is over max_breakers=%d: no CLOSED, idle breaker to evict "
                "among the least recently used; growing to %d",
                self._max,
                overflow,
                extra={"max_breakers": self._max, "breakers": overflow},
            )
        if overrides:
            self._check_overrides(breaker, overrides)
        return breaker

    def _check_overrides(self, breaker: CircuitBreaker, overrides: Mapping[str, Any]) -> None:
        config = breaker.config
        for field, wanted in overrides.items():
            if not hasattr(config, field):
                raise TypeError(f"CircuitBreakerConfig has no field {field!r}")
            if not _same(getattr(config, field), wanted):
                raise ConfigurationError(
                    f"{_OWNER}: breaker {breaker.name!r} already exists with "
                    f"{field}={getattr(config, field)!r}, asked for {wanted!r}"
                )

    # ----- eviction (called with the lock held) -----

    def _make_room(self) -> int | None:
        """Evicts to stay within the bound; returns the new size when an overflow starts (the
        caller logs it once the lock is released), else None."""
        breakers = self._breakers
        excess = len(breakers) + 1 - self._max
        if excess > 0:
            # At the bound one eviction makes room; past it (after an overflow) two shrink it.
            for _ in range(min(excess, 2)):
                if not self._evict_one():
                    break
        size = len(breakers) + 1
        if size <= self._max:
            self._overflowing = False
            return None
        if self._overflowing:
            return None
        self._overflowing = True
        return size

    def _evict_one(self) -> bool:
        breakers = self._breakers
        skipped: list[str] = []
        evicted = False
        for key, breaker in breakers.items():
            if len(skipped) >= _SCAN_LIMIT:
                break
            if _evictable(breaker):
                del breakers[key]
                evicted = True
                break
            skipped.append(key)
        for key in skipped:  # second chance: look at other entries next time
            breakers.move_to_end(key)
        return evicted


def _evictable(breaker: CircuitBreaker) -> bool:
    """CLOSED, not forced, and no call in flight."""
    core = breaker._core
    if core.forced is not None or core.state is not CircuitState.CLOSED:
        return False
    return bool(core.metrics()["in_flight"] == 0)
