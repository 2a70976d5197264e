"""Scenarios: the traffic a service sends and the health of the dependency it calls, over time.

A scenario is a TOML document (or one of the built-ins in ``resilience.simulate.builtin``)::

    name = "outage"
    timeout = 1.0                       # client-side timeout of one attempt, seconds (optional)

    [traffic]
    rate = 200                          # requests per second
    arrivals = "poisson"                # or "uniform": evenly spaced, the first at t = 0

    [[traffic.bursts]]                  # optional extra traffic
    at = 120
    duration = 10
    rate = 400                          # added to the base rate while the burst lasts

    [[phases]]
    name = "healthy"
    duration = 180                      # seconds
    error_rate = 0.01                   # share of calls that fail
    latency = { kind = "lognormal", median = 0.05, p99 = 0.25 }

    [[phases]]
    name = "down"
    duration = 120
    error_rate = 1.0
    error_latency = 0.002               # failures come back fast (connection refused)

The scenario lasts as long as its phases together. Instead of one ``rate``, ``[[traffic.phases]]``
(each a ``duration`` and a ``rate``) give the rate piece by piece; the last rate holds to the end.
A phase may also set ``timeout_rate`` (share of calls that never answer, so they fail at the
client ``timeout``) and ``healthy`` (whether the dependency counts as healthy there; by default it
does when at most ``HEALTHY_FAILURE_RATE`` of its calls are expected to fail, time-outs included).
Optional ``[breaker]`` and ``[retry]`` tables hold the service's own configuration (fields of
``CircuitBreakerConfig`` and ``RetryConfig``, and ``preset``), the baseline that command-line
options adjust.

Latency is a number (constant seconds) or a table with ``kind``: ``constant`` (``value``),
``uniform`` (``low``, ``high``), ``exponential`` (``mean``) or ``lognormal`` (``median``, ``p99``).

Every problem raises ``ScenarioError`` naming the source, the line (when it can be found) and
the field path, such as ``phases[2].error_rate``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import itertools
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from random import Random
from statistics import NormalDist
from typing import Any, Literal, TypeAlias, cast

from .builtin import BUILTIN_SCENARIOS
from .policy import BREAKER_FIELDS, RETRY_FIELDS, PolicyError, breaker_config, retry_config

__all__ = [
    "HEALTHY_FAILURE_RATE",
    "MAX_REQUESTS",
    "ConstantLatency",
    "ExponentialLatency",
    "HealthPhase",
    "Latency",
    "LognormalLatency",
    "Scenario",
    "ScenarioError",
    "Traffic",
    "UniformLatency",
    "load_scenario",
    "parse_scenario",
]

HEALTHY_FAILURE_RATE = 0.05
"""A phase whose expected share of failing calls is at most this counts as healthy by default."""

MAX_REQUESTS = 5_000_000
"""Scenarios that would send more requests than this are refused (they would run for minutes)."""

_NORMAL = NormalDist()
_Z99 = _NORMAL.inv_cdf(0.99)
_TINY = 1e-12  # keeps inverse-CDF sampling away from u == 0 and u == 1


class ScenarioError(ValueError):
    """A scenario that cannot be read or makes no sense.

    Attributes:
        source: the file name, or ``<built-in NAME>``.
        line: 1-based line of the problem, when known.
        column: 1-based column (TOML syntax errors only).
        field: the field path, such as ``phases[2].error_rate``, when the problem has one.
        reason: the message without the position.
    """

    def __init__(
        self,
        source: str,
        reason: str,
        *,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.source = source
        self.reason = reason
        self.field = field
        self.line = line
        self.column = column
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")


# ---------------------------------------------------------------------------------- latency


@dataclass(frozen=True, slots=True)
class ConstantLatency:
    """Every call takes ``value`` seconds."""

    value: float

    def sample(self, u: float) -> float:
        """The latency for the uniform draw ``u`` in ``[0, 1)``."""
        return self.value

    def exceed_probability(self, limit: float) -> float:
        """The chance that a call takes longer than ``limit`` seconds."""
        return 1.0 if self.value > limit else 0.0

    def describe(self) -> str:
        """A short human description."""
        return _ms(self.value)


@dataclass(frozen=True, slots=True)
class UniformLatency:
    """Latency spread evenly between ``low`` and ``high`` seconds."""

    low: float
    high: float

    def sample(self, u: float) -> float:
        """The latency for the uniform draw ``u`` in ``[0, 1)``."""
        return self.low + u * (self.high - self.low)

    def exceed_probability(self, limit: float) -> float:
        """The chance that a call takes longer than ``limit`` seconds."""
        if limit >= self.high:
            return 0.0
        if limit < self.low:
            return 1.0
        return (self.high - limit) / (self.high - self.low)

    def describe(self) -> str:
        """A short human description."""
        return f"{_ms(self.low)}-{_ms(self.high)}"


@dataclass(frozen=True, slots=True)
class ExponentialLatency:
    """Exponentially distributed latency with the given ``mean`` (a long tail)."""

    mean: float

    def sample(self, u: float) -> float:
        """The latency for the uniform draw ``u`` in ``[0, 1)``."""
        return -self.mean * math.log1p(-u)

    def exceed_probability(self, limit: float) -> float:
        """The chance that a call takes longer than ``limit`` seconds."""
        if self.mean == 0.0:
            return 0.0
        return math.exp(-limit / self.mean)

    def describe(self) -> str:
        """A short human description."""
        return f"mean {_ms(self.mean)}"


@dataclass(frozen=True, slots=True)
class LognormalLatency:
    """Log-normal latency given by its ``median`` and 99th percentile ``p99`` (seconds)."""

    median: float
    p99: float
    _mu: float = dataclasses.field(init=False, repr=False, compare=False)
    _sigma: float = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_mu", math.log(self.median))
        object.__setattr__(self, "_sigma", (math.log(self.p99) - self._mu) / _Z99)

    def sample(self, u: float) -> float:
        """The latency for the uniform draw ``u`` in ``[0, 1)``."""
        if self._sigma == 0.0:
            return self.median
        z = _NORMAL.inv_cdf(min(max(u, _TINY), 1.0 - _TINY))
        return math.exp(self._mu + self._sigma * z)

    def exceed_probability(self, limit: float) -> float:
        """The chance that a call takes longer than ``limit`` seconds."""
        mu, sigma = self._mu, self._sigma
        if sigma == 0.0:
            return 1.0 if self.median > limit else 0.0
        if limit <= 0.0:
            return 1.0
        return 1.0 - _NORMAL.cdf((math.log(limit) - mu) / sigma)

    def describe(self) -> str:
        """A short human description."""
        return f"median {_ms(self.median)}, p99 {_ms(self.p99)}"


Latency: TypeAlias = ConstantLatency | UniformLatency | ExponentialLatency | LognormalLatency
"""A latency distribution: ``sample(u)``, ``exceed_probability(limit)``, ``describe()``."""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms" if seconds < 1.0 else f"{seconds:g} s"


# ---------------------------------------------------------------------------------- scenario


@dataclass(frozen=True, slots=True)
class HealthPhase:
    """A stretch of time with one behaviour of the dependency.

    Attributes:
        name: shown in timelines and plots.
        start: seconds from the scenario's start.
        duration: seconds.
        error_rate: share of calls that fail with a connection error.
        timeout_rate: share of the other calls that never answer (they fail at the timeout).
        latency: how long a successful call takes.
        error_latency: how long a failing call takes to fail.
        healthy: whether calls rejected here are false rejections, and failures here count as
            failures let through during an outage.
        failure_rate: the expected share of failing calls (errors, hangs, too slow).
    """

    name: str
    start: float
    duration: float
    error_rate: float
    timeout_rate: float
    latency: Latency
    error_latency: Latency
    healthy: bool
    failure_rate: float

    @property
    def end(self) -> float:
        """When the phase ends, seconds from the scenario's start."""
        return self.start + self.duration

    def describe(self) -> str:
        """A one-line description: failure shares and latency."""
        parts = []
        if self.error_rate:
            parts.append(f"{self.error_rate:.0%} errors")
        if self.timeout_rate:
            parts.append(f"{self.timeout_rate:.0%} hang")
        if self.error_rate < 1.0:
            parts.append(f"latency {self.latency.describe()}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Traffic:
    """When requests arrive.

    Attributes:
        arrivals: ``"poisson"`` (random, memoryless gaps) or ``"uniform"`` (evenly spaced, the
            first at the first instant with a positive rate).
        segments: ``(start, end, rate)`` pieces covering the scenario, rate in requests/s.
    """

    arrivals: Literal["poisson", "uniform"]
    segments: tuple[tuple[float, float, float], ...]

    def expected_requests(self) -> float:
        """The mean number of requests over the whole scenario."""
        return sum((end - start) * rate for start, end, rate in self.segments)

    def peak_rate(self) -> float:
        """The highest rate of any segment."""
        return max((rate for _, _, rate in self.segments), default=0.0)

    def arrival_times(self, rng: Random) -> Iterator[float]:
        """Arrival times in seconds, increasing, all before the scenario's end.

        Each arrival consumes one unit of integrated rate: an ``Exp(1)`` draw from ``rng`` for
        Poisson arrivals, exactly 1 for uniform ones, so a piecewise rate is followed exactly.
        """
        poisson = self.arrivals == "poisson"
        work = rng.expovariate(1.0) if poisson else 0.0
        t = 0.0
        segments = self.segments
        i = 0
        while i < len(segments):
            start, end, rate = segments[i]
            t = max(t, start)
            room = rate * (end - t)
            if rate > 0.0 and work < room:
                t += work / rate
                yield t
                work = rng.expovariate(1.0) if poisson else 1.0
            else:
                work -= room
                i += 1

    def describe(self) -> str:
        """For example ``200 req/s (poisson)`` or ``50-400 req/s (uniform)``."""
        rates = [rate for _, _, rate in self.segments]
        low, high = min(rates), max(rates)
        shown = f"{low:g}" if low == high else f"{low:g}-{high:g}"
        return f"{shown} req/s ({self.arrivals})"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed, validated scenario.

    Attributes:
        name: the scenario's name (its file stem when the file names none).
        description: free text.
        source: where it came from (a path or ``<built-in NAME>``).
        seed: default random seed (``--seed`` overrides it).
        timeout: client-side timeout of one attempt in seconds, or None for none.
        traffic: the arrival process.
        phases: the dependency's health, back to back from t = 0.
        breaker: the service's breaker settings from the ``[breaker]`` table (may hold "preset").
        retry: the service's retry settings from the ``[retry]`` table.
        text: the TOML text it was parsed from.
    """

    name: str
    description: str
    source: str
    seed: int
    timeout: float | None
    traffic: Traffic
    phases: tuple[HealthPhase, ...]
    breaker: Mapping[str, Any]
    retry: Mapping[str, Any]
    text: str

    @property
    def duration(self) -> float:
        """Seconds from start to end: the phases' durations added up."""
        return self.phases[-1].end

    def outages(self) -> list[tuple[float, float]]:
        """``(start, end)`` of each run of consecutive unhealthy phases, in order."""
        spans: list[tuple[float, float]] = []
        for phase in self.phases:
            if phase.healthy:
                continue
            if spans and spans[-1][1] == phase.start:
                spans[-1] = (spans[-1][0], phase.end)
            else:
                spans.append((phase.start, phase.end))
        return spans


# ---------------------------------------------------------------------------------- TOML


def _toml_loads(text: str, source: str) -> dict[str, Any]:
    """Parses TOML with ``tomllib`` (Python 3.11+) or ``tomli`` (3.10).

    The module is imported by name so type checking does not depend on which one is installed.
    """
    module_name = "tomllib" if sys.version_info >= (3, 11) else "tomli"
    try:
        toml = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise ScenarioError(
            source, "reading TOML on Python 3.10 needs the tomli package: pip install tomli"
        ) from None
    try:
        return cast(dict[str, Any], toml.loads(text))
    except toml.TOMLDecodeError as exc:
        reason = str(exc)
        line = column = None
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)", reason)
        if found:
            line, column = int(found.group(1)), int(found.group(2))
            reason = reason[: found.start()] + reason[found.end() :]
        raise ScenarioError(source, f"invalid TOML: {reason}", line=line, column=column) from None


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")


def _key_parts(dotted: str) -> list[str]:
    return [
        part.strip().strip("\"'")
        for part in re.split(r"\.(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", dotted)
    ]


class _KeyLines:
    """Finds the line of a field path (``phases[2].error_rate``) in TOML text, best effort.

    Scans headers (``[a.b]``, ``[[a]]``, counting array-of-tables entries) and ``key =`` lines;
    lines inside multi-line strings and arrays are skipped. A path that is not found falls back to
    its nearest ancestor that is.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        counts: dict[str, int] = {}
        table = ""
        depth = 0  # open brackets/braces of a multi-line value
        in_string: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if in_string in raw:
                    in_string = None
                continue
            line = _strip_comment(raw)
            if depth > 0:
                depth = max(0, depth + _bracket_balance(line))
                continue
            header = _HEADER.match(line)
            if header:
                parts = _key_parts(header.group(2))
                name = ".".join(parts)
                path = _resolve(counts, parts)
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    path = f"{path}[{index}]"
                table = path
                self._lines.setdefault(path, number)
                continue
            key = _KEY.match(line)
            if not key:
                continue
            path = ".".join(
                [table, *_key_parts(key.group(1))] if table else _key_parts(key.group(1))
            )
            self._lines.setdefault(path, number)
            value = line[key.end() :]
            for quote in ('"""', "'''"):
                if value.count(quote) % 2 == 1:
                    in_string = quote
            if in_string is None:
                depth = max(0, _bracket_balance(value))

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest ancestor, else None."""
        while path:
            if path in self._lines:
                return self._lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None


def _resolve(counts: Mapping[str, int], parts: list[str]) -> str:
    """The path of a header's table: array-of-tables prefixes point at their latest entry."""
    path = ""
    name = ""
    for part in parts[:-1]:
        name = f"{name}.{part}" if name else part
        path = f"{path}.{part}" if path else part
        if name in counts:
            path += f"[{counts[name] - 1}]"
    last = parts[-1]
    return f"{path}.{last}" if path else last


def _strip_comment(line: str) -> str:
    quote: str | None = None
    for i, char in enumerate(line):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:i]
    return line


def _bracket_balance(text: str) -> int:
    without_strings = re.sub(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'", "", text)
    return sum(without_strings.count(c) for c in "[{") - sum(without_strings.count(c) for c in "]}")


# ---------------------------------------------------------------------------------- reading


_TOP_FIELDS = ("name", "description", "seed", "timeout", "traffic", "phases", "breaker", "retry")
_TRAFFIC_FIELDS = ("rate", "arrivals", "phases", "bursts")
_TRAFFIC_PHASE_FIELDS = ("duration", "rate")
_BURST_FIELDS = ("at", "duration", "rate")
_PHASE_FIELDS = (
    "name",
    "duration",
    "error_rate",
    "timeout_rate",
    "latency",
    "error_latency",
    "healthy",
)
_LATENCY_FIELDS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "uniform": ("low", "high"),
    "exponential": ("mean",),
    "lognormal": ("median", "p99"),
}
_DEFAULT_LATENCY = ConstantLatency(0.05)


class _Reader:
    """Typed access to the parsed TOML with errors that name the field and its line."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = _KeyLines(text)

    def error(self, path: str, reason: str) -> ScenarioError:
        return ScenarioError(self.source, reason, field=path, line=self.lines.line_of(path))

    def known_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in table:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.error(
                    where, f"unknown field ({hint}expected one of: {', '.join(allowed)})"
                )

    def table(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, got {_kind(value)}")
        return value

    def tables(self, value: Any, path: str) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise self.error(path, f"must be an array of tables ([[{path}]]), got {_kind(value)}")
        return [self.table(item, f"{path}[{i}]") for i, item in enumerate(value)]

    def string(self, table: Mapping[str, Any], key: str, path: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            raise self.error(_join(path, key), f"must be a string, got {_kind(value)}")
        return value

    def number(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: float | None = None,
        low: float = 0.0,
        high: float | None = None,
        positive: bool = False,
    ) -> float:
        where = _join(path, key)
        if key not in table:
            if default is None:
                raise self.error(where, "missing (required)")
            return default
        return self.value(table[key], where, low=low, high=high, positive=positive)

    def value(
        self,
        value: Any,
        where: str,
        *,
        low: float = 0.0,
        high: float | None = None,
        positive: bool = False,
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(where, f"must be a number, got {_kind(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise self.error(where, f"must be finite, got {value!r}")
        if number < low or (positive and number == low):
            raise self.error(where, f"must be {'>' if positive else '>='} {low:g}, got {value!r}")
        if high is not None and number > high:
            raise self.error(where, f"must be <= {high:g}, got {value!r}")
        return number

    def latency(self, value: Any, path: str) -> Latency:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return ConstantLatency(self.value(value, path))
        if not isinstance(value, dict):
            raise self.error(path, f"must be seconds or a table with a 'kind', got {_kind(value)}")
        kind = self.string(value, "kind", path, "")
        if kind not in _LATENCY_FIELDS:
            raise self.error(
                _join(path, "kind"),
                f"must be one of {', '.join(_LATENCY_FIELDS)}, got {kind!r}"
                if kind
                else f"missing (one of {', '.join(_LATENCY_FIELDS)})",
            )
        fields = _LATENCY_FIELDS[kind]
        self.known_keys(value, ("kind", *fields), path)
        if kind == "constant":
            return ConstantLatency(self.number(value, "value", path))
        if kind == "uniform":
            low = self.number(value, "low", path)
            high = self.number(value, "high", path)
            if high < low:
                raise self.error(_join(path, "high"), f"must be >= low ({low:g}), got {high:g}")
            return UniformLatency(low, high)
        if kind == "exponential":
            return ExponentialLatency(self.number(value, "mean", path))
        median = self.number(value, "median", path, positive=True)
        p99 = self.number(value, "p99", path, positive=True)
        if p99 < median:
            raise self.error(_join(path, "p99"), f"must be >= median ({median:g}), got {p99:g}")
        return LognormalLatency(median, p99)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a number"}
    for kind, name in names.items():
        if type(value) is kind:
            return f"{name} ({value!r})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _traffic(reader: _Reader, raw: Any, duration: float) -> Traffic:
    table = reader.table(raw, "traffic")
    reader.known_keys(table, _TRAFFIC_FIELDS, "traffic")
    arrivals = reader.string(table, "arrivals", "traffic", "poisson")
    if arrivals not in ("poisson", "uniform"):
        raise reader.error("traffic.arrivals", f"must be 'poisson' or 'uniform', got {arrivals!r}")
    pieces: list[tuple[float, float, float]] = []
    if "phases" in table:
        if "rate" in table:
            raise reader.error("traffic.rate", "give either rate or [[traffic.phases]], not both")
        entries = reader.tables(table["phases"], "traffic.phases")
        if not entries:
            raise reader.error("traffic.phases", "must hold at least one phase")
        start = 0.0
        for i, entry in enumerate(entries):
            path = f"traffic.phases[{i}]"
            reader.known_keys(entry, _TRAFFIC_PHASE_FIELDS, path)
            length = reader.number(entry, "duration", path, positive=True)
            rate = reader.number(entry, "rate", path)
            pieces.append((start, start + length, rate))
            start += length
        last = pieces[-1]
        pieces[-1] = (last[0], max(last[1], duration), last[2])
    else:
        pieces.append((0.0, duration, reader.number(table, "rate", "traffic")))
    bursts: list[tuple[float, float, float]] = []
    for i, entry in enumerate(reader.tables(table.get("bursts", []), "traffic.bursts")):
        path = f"traffic.bursts[{i}]"
        reader.known_keys(entry, _BURST_FIELDS, path)
        at = reader.number(entry, "at", path)
        if at >= duration:
            raise reader.error(
                _join(path, "at"), f"must be before the scenario's end ({duration:g} s), got {at:g}"
            )
        length = reader.number(entry, "duration", path, positive=True)
        bursts.append((at, at + length, reader.number(entry, "rate", path)))
    cuts = sorted({0.0, duration, *(t for p in pieces + bursts for t in p[:2] if t < duration)})
    segments: list[tuple[float, float, float]] = []
    for start, end in itertools.pairwise(cuts):
        rate = sum(r for s, e, r in pieces + bursts if s <= start < e)
        if segments and segments[-1][2] == rate:
            segments[-1] = (segments[-1][0], end, rate)
        else:
            segments.append((start, end, rate))
    traffic = Traffic(cast(Literal["poisson", "uniform"], arrivals), tuple(segments))
    if traffic.expected_requests() > MAX_REQUESTS:
        raise reader.error(
            "traffic",
            f"about {traffic.expected_requests():,.0f} requests; at most {MAX_REQUESTS:,} "
            "can be simulated",
        )
    return traffic


def _phase(
    reader: _Reader, raw: dict[str, Any], index: int, start: float, timeout: float | None
) -> HealthPhase:
    path = f"phases[{index}]"
    reader.known_keys(raw, _PHASE_FIELDS, path)
    name = reader.string(raw, "name", path, f"phase {index + 1}")
    duration = reader.number(raw, "duration", path, positive=True)
    error_rate = reader.number(raw, "error_rate", path, default=0.0, high=1.0)
    timeout_rate = reader.number(raw, "timeout_rate", path, default=0.0, high=1.0)
    if timeout_rate > 0.0 and timeout is None:
        raise reader.error(
            _join(path, "timeout_rate"), "needs a top-level timeout (hung calls never end)"
        )
    latency = (
        reader.latency(raw["latency"], _join(path, "latency"))
        if "latency" in raw
        else _DEFAULT_LATENCY
    )
    error_latency = (
        reader.latency(raw["error_latency"], _join(path, "error_latency"))
        if "error_latency" in raw
        else latency
    )
    slow = latency.exceed_probability(timeout) if timeout is not None else 0.0
    failure_rate = error_rate + (1.0 - error_rate) * (timeout_rate + (1.0 - timeout_rate) * slow)
    healthy = raw.get("healthy", failure_rate <= HEALTHY_FAILURE_RATE)
    if not isinstance(healthy, bool):
        raise reader.error(_join(path, "healthy"), f"must be true or false, got {_kind(healthy)}")
    return HealthPhase(
        name=name,
        start=start,
        duration=duration,
        error_rate=error_rate,
        timeout_rate=timeout_rate,
        latency=latency,
        error_latency=error_latency,
        healthy=healthy,
        failure_rate=failure_rate,
    )


def _settings(
    reader: _Reader,
    doc: Mapping[str, Any],
    key: str,
    allowed: tuple[str, ...],
    check: Callable[[Mapping[str, Any]], object],
) -> dict[str, Any]:
    if key not in doc:
        return {}
    table = reader.table(doc[key], key)
    reader.known_keys(table, allowed, key)
    try:
        check(table)
    except PolicyError as exc:
        raise reader.error(_join(key, exc.field) if exc.field else key, exc.reason) from None
    return dict(table)


def parse_scenario(
    text: str, source: str = "<scenario>", default_name: str = "scenario"
) -> Scenario:
    """Parses and validates a scenario from TOML text.

    Args:
        text: the TOML document.
        source: names the document in errors (a path, or ``<built-in NAME>``).
        default_name: the name when the document sets none.

    Raises:
        ScenarioError: invalid TOML, an unknown field, a wrong type or a value out of range.
    """
    doc = _toml_loads(text, source)
    reader = _Reader(source, text)
    reader.known_keys(doc, _TOP_FIELDS, "")
    name = reader.string(doc, "name", "", default_name)
    description = reader.string(doc, "description", "", "")
    seed_value = doc.get("seed", 1)
    if isinstance(seed_value, bool) or not isinstance(seed_value, int) or seed_value < 0:
        raise reader.error("seed", f"must be an integer >= 0, got {_kind(seed_value)}")
    timeout = reader.number(doc, "timeout", "", positive=True) if "timeout" in doc else None
    if "phases" not in doc:
        raise reader.error("phases", "missing: add at least one [[phases]] table")
    entries = reader.tables(doc["phases"], "phases")
    if not entries:
        raise reader.error("phases", "must hold at least one phase")
    phases: list[HealthPhase] = []
    start = 0.0
    for i, entry in enumerate(entries):
        phase = _phase(reader, entry, i, start, timeout)
        phases.append(phase)
        start = phase.end
    if "traffic" not in doc:
        raise reader.error("traffic", "missing: add a [traffic] table with a rate")
    traffic = _traffic(reader, doc["traffic"], start)
    breaker = _settings(reader, doc, "breaker", ("preset", *BREAKER_FIELDS), breaker_config)
    retry = _settings(reader, doc, "retry", RETRY_FIELDS, retry_config)
    return Scenario(
        name=name,
        description=description,
        source=source,
        seed=seed_value,
        timeout=timeout,
        traffic=traffic,
        phases=tuple(phases),
        breaker=breaker,
        retry=retry,
        text=text,
    )


def load_scenario(ref: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file by path.

    Raises:
        ScenarioError: no such built-in or file, or the file is invalid.
    """
    key = str(ref)
    if key in BUILTIN_SCENARIOS:
        return parse_scenario(BUILTIN_SCENARIOS[key], f"<built-in {key}>", key)
    path = Path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(
            key,
            "no such file, and no built-in scenario of that name "
            f"(built-ins: {', '.join(BUILTIN_SCENARIOS)})",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(key, f"cannot read: {exc}") from None
    return parse_scenario(text, key, path.stem)
