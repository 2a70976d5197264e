"""What a run means: incidents, the summary numbers, and their text and JSON forms.

The numbers, per configuration:

* **time to open**: from the start of an outage (a run of unhealthy phases) to the first moment
  the breaker is OPEN; 0 when it was already open. Never opening during the outage counts as
  not detected.
* **failing calls let through**: attempts that reached the dependency and failed, started while
  it was unhealthy.
* **false rejections**: attempts the breaker rejected while the dependency was healthy.
* **time to close**: from the end of an outage to the first moment the breaker is CLOSED
  (0 when it already was), before the next outage or the scenario's end.
* **trial calls**: attempts let through while HALF_OPEN.
* **retry amplification**: attempts (let through or rejected) per logical request.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..breaker import CircuitBreakerConfig, CircuitState
from ..retry import RetryConfig
from .engine import RunResult, Transition
from .policy import BREAKER_FIELDS, RETRY_FIELDS
from .scenario import HEALTHY_FAILURE_RATE, Scenario

__all__ = ["Incident", "Summary", "incidents", "render_text", "summarize", "to_json"]

_MAX_LISTED = 40  # transitions printed per configuration; --json has them all
_DEFAULT_BREAKER = {f: getattr(CircuitBreakerConfig(), f) for f in BREAKER_FIELDS}
_DEFAULT_RETRY = {f: getattr(RetryConfig(), f) for f in RETRY_FIELDS}


@dataclass(frozen=True, slots=True)
class Incident:
    """One outage and the recovery after it.

    Attributes:
        start: when the outage began, seconds.
        end: when it ended (the recovery began), seconds.
        phases: names of the unhealthy phases it spans.
        time_to_open: seconds until the breaker was OPEN, or None if it never was.
        failing_calls: failed attempts let through during the outage.
        recovered: whether a healthy phase follows (False when the scenario ends down).
        time_to_close: seconds from the recovery until the breaker was CLOSED, or None if it
            never was (or there is no recovery).
    """

    start: float
    end: float
    phases: tuple[str, ...]
    time_to_open: float | None
    failing_calls: int
    recovered: bool
    time_to_close: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers of one run (see the module docstring for their definitions).

    Attributes:
        requests: logical requests that arrived.
        requests_succeeded: ... that succeeded (after retries).
        requests_failed: ... that failed after retries.
        requests_rejected: ... that ended rejected by the breaker.
        requests_unfinished: ... still running at the end.
        attempts: attempts made, let through or rejected.
        calls: attempts let through to the dependency.
        rejected: attempts rejected by the breaker.
        retry_amplification: attempts per request.
        outages: outages in the scenario.
        outages_opened: outages during which the breaker opened.
        time_to_open: mean over the outages where it opened (None if none).
        time_to_open_max: the longest of those.
        failing_calls_let_through: failed attempts started while the dependency was unhealthy.
        false_rejections: rejections while the dependency was healthy.
        recoveries: outages followed by a healthy phase.
        recoveries_closed: recoveries in which the breaker was (or became) CLOSED.
        time_to_close: mean over those recoveries (None if none).
        time_to_close_max: the longest of those.
        trial_calls: attempts let through while HALF_OPEN.
        transitions: state changes.
    """

    requests: int
    requests_succeeded: int
    requests_failed: int
    requests_rejected: int
    requests_unfinished: int
    attempts: int
    calls: int
    rejected: int
    retry_amplification: float
    outages: int
    outages_opened: int
    time_to_open: float | None
    time_to_open_max: float | None
    failing_calls_let_through: int
    false_rejections: int
    recoveries: int
    recoveries_closed: int
    time_to_close: float | None
    time_to_close_max: float | None
    trial_calls: int
    transitions: int


def _state_at(transitions: Sequence[Transition], t: float) -> CircuitState:
    """The state after every transition at or before ``t``."""
    state = CircuitState.CLOSED
    for transition in transitions:
        if transition.time > t:
            break
        state = transition.to_state
    return state


def _time_until(
    transitions: Sequence[Transition], state: CircuitState, start: float, end: float
) -> float | None:
    """Seconds from ``start`` until the breaker is in ``state``, if that happens before ``end``."""
    if _state_at(transitions, start) is state:
        return 0.0
    for transition in transitions:
        if start < transition.time < end and transition.to_state is state:
            return transition.time - start
    return None


def incidents(result: RunResult) -> list[Incident]:
    """The outages of the scenario and what the breaker did about each."""
    scenario = result.scenario
    spans = scenario.outages()
    found: list[Incident] = []
    for i, (start, end) in enumerate(spans):
        horizon = spans[i + 1][0] if i + 1 < len(spans) else scenario.duration
        inside = [k for k, phase in enumerate(scenario.phases) if start <= phase.start < end]
        recovered = end < scenario.duration
        found.append(
            Incident(
                start=start,
                end=end,
                phases=tuple(scenario.phases[k].name for k in inside),
                time_to_open=_time_until(result.transitions, CircuitState.OPEN, start, end),
                failing_calls=sum(result.phases[k].failures for k in inside),
                recovered=recovered,
                time_to_close=(
                    _time_until(result.transitions, CircuitState.CLOSED, end, horizon)
                    if recovered
                    else None
                ),
            )
        )
    return found


def _mean_max(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), max(values)


def summarize(result: RunResult) -> Summary:
    """The headline numbers of a run."""
    found = incidents(result)
    opened = [i.time_to_open for i in found if i.time_to_open is not None]
    closed = [i.time_to_close for i in found if i.recovered and i.time_to_close is not None]
    healthy = [p.healthy for p in result.scenario.phases]
    attempts = result.calls + result.rejected
    open_mean, open_max = _mean_max(opened)
    close_mean, close_max = _mean_max(closed)
    return Summary(
        requests=result.requests,
        requests_succeeded=result.requests_succeeded,
        requests_failed=result.requests_failed,
        requests_rejected=result.requests_rejected,
        requests_unfinished=result.requests_unfinished,
        attempts=attempts,
        calls=result.calls,
        rejected=result.rejected,
        retry_amplification=attempts / result.requests if result.requests else 0.0,
        outages=len(found),
        outages_opened=len(opened),
        time_to_open=open_mean,
        time_to_open_max=open_max,
        failing_calls_let_through=sum(
            c.failures for c, ok in zip(result.phases, healthy, strict=True) if not ok
        ),
        false_rejections=sum(
            c.rejected for c, ok in zip(result.phases, healthy, strict=True) if ok
        ),
        recoveries=sum(1 for i in found if i.recovered),
        recoveries_closed=len(closed),
        time_to_close=close_mean,
        time_to_close_max=close_max,
        trial_calls=sum(p.trials for p in result.phases),
        transitions=len(result.transitions),
    )


# ---------------------------------------------------------------------------------- JSON


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def _phase_name(scenario: Scenario, t: float) -> str:
    for phase in scenario.phases:
        if phase.start <= t < phase.end:
            return phase.name
    return scenario.phases[-1].name


def to_json(results: Sequence[RunResult]) -> dict[str, Any]:
    """The scenario, and per configuration its settings, summary, incidents and transitions.

    Floats are rounded to 6 decimals; the same inputs and seed always give the same document.
    """
    scenario = results[0].scenario
    document: dict[str, Any] = _round(
        {
            "scenario": {
                "name": scenario.name,
                "source": scenario.source,
                "description": scenario.description,
                "duration": scenario.duration,
                "seed": results[0].seed,
                "timeout": scenario.timeout,
                "healthy_failure_rate": HEALTHY_FAILURE_RATE,
                "phases": [
                    {
                        "name": p.name,
                        "start": p.start,
                        "end": p.end,
                        "healthy": p.healthy,
                        "error_rate": p.error_rate,
                        "timeout_rate": p.timeout_rate,
                        "expected_failure_rate": p.failure_rate,
                    }
                    for p in scenario.phases
                ],
            },
            "runs": [
                {
                    "label": result.policy.label,
                    **result.policy.settings(),
                    "summary": asdict(summarize(result)),
                    "incidents": [asdict(i) for i in incidents(result)],
                    "phases": [
                        {"name": phase.name, **asdict(counts)}
                        for phase, counts in zip(scenario.phases, result.phases, strict=True)
                    ],
                    "transitions": [
                        {
                            "time": t.time,
                            "from": t.from_state.value,
                            "to": t.to_state.value,
                            "phase": _phase_name(scenario, t.time),
                            "window_error_rate": t.error_rate,
                            "window_total": t.window_total,
                        }
                        for t in result.transitions
                    ],
                }
                for result in results
            ],
        }
    )
    return document


# ---------------------------------------------------------------------------------- text


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _clock(t: float) -> str:
    return f"{t:8.2f} s"


def _span(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


_ALWAYS_SHOWN = {
    "breaker": ("error_threshold", "volume_threshold", "window_size", "sleep_window"),
    "retry": ("max_attempts",),
}


def _settings_lines(result: RunResult) -> tuple[str, str]:
    """The breaker and retry settings: the main ones, and any other that is not the default."""
    defaults = {
        "breaker": dict.fromkeys(BREAKER_FIELDS) | _DEFAULT_BREAKER,
        "retry": dict.fromkeys(RETRY_FIELDS) | _DEFAULT_RETRY,
    }
    lines = []
    for kind, values in result.policy.settings().items():
        shown = [
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in values.items()
            if key != "name"
            and (key in _ALWAYS_SHOWN[kind] or value != defaults[kind].get(key))
            and not (kind == "retry" and values["max_attempts"] == 1 and key != "max_attempts")
        ]
        lines.append(f"{kind:<8} {' '.join(shown)}")
    return lines[0], lines[1]


def _open_detail(transition: Transition) -> str:
    if transition.from_state is CircuitState.CLOSED and transition.to_state is CircuitState.OPEN:
        return (
            f"  (window: {transition.error_rate:.0%} errors of {transition.window_total:,} calls)"
        )
    return ""


def _cell_time(value: float | None, maximum: float | None, count: int, what: str) -> str:
    if count == 0:
        return f"n/a (no {what})"
    if value is None:
        return "never"
    if count > 1 and maximum is not None and maximum != value:
        return f"{_seconds(value)} (max {_seconds(maximum)})"
    return _seconds(value)


def render_text(results: Sequence[RunResult]) -> str:
    """The human report: scenario, configurations, transitions, then the summary table."""
    scenario = results[0].scenario
    out: list[str] = []
    title = f"Scenario {scenario.name!r}"
    if scenario.description:
        title += f": {scenario.description}"
    out.append(title)
    timeout = f", client timeout {scenario.timeout:g} s" if scenario.timeout else ""
    out.append(
        f"  {_span(scenario.duration)}, {scenario.traffic.describe()}{timeout}, "
        f"seed {results[0].seed}"
    )
    width = max(len(p.name) for p in scenario.phases)
    spans = [f"{phase.start:g}-{phase.end:g} s" for phase in scenario.phases]
    span_width = max(len(span) for span in spans)
    for phase, span in zip(scenario.phases, spans, strict=True):
        tag = "" if phase.healthy else "  (unhealthy)"
        out.append(f"  {span:>{span_width}}  {phase.name:<{width}}  {phase.describe()}{tag}")
    out.append("")
    label_width = max(len(r.policy.label) for r in results)
    out.append("Configurations")
    for result in results:
        breaker, retry = _settings_lines(result)
        out.append(f"  {result.policy.label:<{label_width}}  {breaker}")
        out.append(f"  {'':<{label_width}}  {retry}")
    for result in results:
        out.append("")
        out.append(f"Transitions: {result.policy.label}")
        if not result.transitions:
            out.append("  (none: the breaker stayed closed)")
        for transition in result.transitions[:_MAX_LISTED]:
            out.append(
                f"  {_clock(transition.time)}  "
                f"{_phase_name(scenario, transition.time):<{width}}  "
                f"{transition.from_state.value:>9} -> {transition.to_state.value:<9}"
                f"{_open_detail(transition)}".rstrip()
            )
        hidden = len(result.transitions) - _MAX_LISTED
        if hidden > 0:
            out.append(f"  ... and {hidden} more (--json lists them all)")
    out.append("")
    out.extend(_table(results))
    return "\n".join(out)


def _table(results: Sequence[RunResult]) -> list[str]:
    summaries = [summarize(r) for r in results]
    rows: list[tuple[str, list[str]]] = [
        ("requests", [f"{s.requests:,}" for s in summaries]),
        (
            "  succeeded",
            [f"{s.requests_succeeded / s.requests:.1%}" if s.requests else "-" for s in summaries],
        ),
        (
            "outages detected (breaker opened)",
            [f"{s.outages_opened} of {s.outages}" for s in summaries],
        ),
        (
            "time to open after outage began",
            [
                _cell_time(s.time_to_open, s.time_to_open_max, s.outages, "outage")
                for s in summaries
            ],
        ),
        ("failing calls let through", [f"{s.failing_calls_let_through:,}" for s in summaries]),
        ("false rejections (while healthy)", [f"{s.false_rejections:,}" for s in summaries]),
        (
            "time to close after recovery",
            [
                _cell_time(s.time_to_close, s.time_to_close_max, s.recoveries, "recovery")
                for s in summaries
            ],
        ),
        ("trial calls (half-open)", [f"{s.trial_calls:,}" for s in summaries]),
        (
            "retry amplification (attempts/request)",
            [f"{s.retry_amplification:.2f}x" for s in summaries],
        ),
        ("state transitions", [f"{s.transitions:,}" for s in summaries]),
    ]
    first = max(len(name) for name, _ in rows)
    widths = [
        max(len(r.policy.label), *(len(cells[i]) for _, cells in rows))
        for i, r in enumerate(results)
    ]
    header = " " * first + "".join(
        f"  {r.policy.label:>{w}}" for r, w in zip(results, widths, strict=True)
    )
    lines = ["Summary", header]
    for name, cells in rows:
        lines.append(
            f"{name:<{first}}" + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths, strict=True))
        )
    return lines
