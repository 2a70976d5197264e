"""The picture of a run: traffic by outcome, the window's error rate, and the breaker's state.

Needs matplotlib (``pip install 'resilience-rs[plot]'``). It draws on a ``matplotlib.figure.Figure``
with the Agg canvas directly, never through ``pyplot``, so it neither needs a display nor changes
the backend of a program that imports it.

Per configuration, three panels share one time axis (several configurations are stacked):

1. attempts per second by outcome: succeeded, failed, rejected by the breaker (stacked); when a
   few bins dwarf the rest (retries released together), the axis is capped and those bins are
   labelled with their value;
2. the breaker's window error rate with the ``error_threshold`` line; the line is grey while the
   window holds fewer than ``volume_threshold`` outcomes (the rate is not judged then);
3. the breaker's state as a coloured band: closed, half-open, open.

Unhealthy phases of the dependency are shaded in every panel.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..breaker import CircuitState
from .engine import RunResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PLOT_EXTRA_HINT", "PlotUnavailableError", "plot_available", "write_plot"]

PLOT_EXTRA_HINT = "--plot needs matplotlib: pip install 'resilience-rs[plot]'"

_OUTCOME_COLORS = ("#2ca02c", "#d62728", "#9e9e9e")  # succeeded, failed, rejected
_STATE_COLORS = {
    CircuitState.CLOSED: "#2ca02c",
    CircuitState.HALF_OPEN: "#ff7f0e",
    CircuitState.OPEN: "#d62728",
}
_UNHEALTHY_SHADE = {"color": "#d62728", "alpha": 0.07, "linewidth": 0}


class PlotUnavailableError(ImportError):
    """matplotlib is not installed."""


def plot_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def write_plot(results: Sequence[RunResult], path: str | Path) -> None:
    """Draws the runs (stacked, one above the other) and saves the picture to ``path``.

    The format follows the file name's extension (``.png``, ``.svg``, ``.pdf``, ...).

    Raises:
        PlotUnavailableError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailableError(PLOT_EXTRA_HINT) from exc

    scenario = results[0].scenario
    rows = 3 * len(results)
    figure = Figure(figsize=(12, 1.0 + 4.4 * len(results)), layout="constrained")
    axes = figure.subplots(
        rows, 1, sharex=True, gridspec_kw={"height_ratios": [3.0, 2.0, 0.55] * len(results)}
    )
    figure.suptitle(
        f"{scenario.name}: {scenario.traffic.describe()}, seed {results[0].seed}",
        fontsize=12,
    )
    for i, result in enumerate(results):
        rate_axes, error_axes, state_axes = axes[3 * i], axes[3 * i + 1], axes[3 * i + 2]
        for ax in (rate_axes, error_axes, state_axes):
            for phase in scenario.phases:
                if not phase.healthy:
                    ax.axvspan(phase.start, phase.end, **_UNHEALTHY_SHADE)
        _draw_rates(rate_axes, result, label_phases=i == 0)
        _draw_error_rate(error_axes, result)
        _draw_states(state_axes, result)
    axes[-1].set_xlim(0.0, scenario.duration)
    axes[-1].set_xlabel("time (s)")
    figure.savefig(path, dpi=110)


def _draw_rates(ax: Axes, result: RunResult, *, label_phases: bool) -> None:
    width = result.bin_width
    edges = [k * width for k in range(len(result.successes) + 1)]

    def per_second(counts: tuple[int, ...]) -> list[float]:
        values = [c / width for c in counts]
        return [*values, values[-1]]  # the last bin drawn to its right edge

    ax.stackplot(
        edges,
        per_second(result.successes),
        per_second(result.failures),
        per_second(result.rejections),
        labels=("succeeded", "failed", "rejected by breaker"),
        colors=_OUTCOME_COLORS,
        step="post",
        alpha=0.9,
    )
    ax.set_title(
        result.policy.label,
        loc="left",
        fontsize=11,
        fontweight="bold",
        pad=16 if label_phases else 6,  # room for the phase names above the first panel
    )
    ax.set_ylabel("attempts/s")
    _clip_spikes(ax, result)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.margins(x=0)
    if label_phases:
        transform = ax.get_xaxis_transform()
        for phase in result.scenario.phases:
            ax.text(
                (phase.start + phase.end) / 2,
                1.01,
                phase.name,
                transform=transform,
                ha="center",
                va="bottom",
                fontsize=8,
                color="#444444",
            )


def _clip_spikes(ax: Axes, result: RunResult) -> None:
    """Caps the y axis when a few bins dwarf the rest, and labels those bins with their value.

    Retries that all wait for the same ``retry_after`` arrive in the same instant; drawn to
    scale, such a spike would flatten everything else into the axis.
    """
    width = result.bin_width
    totals = [
        (s + f + r) / width
        for s, f, r in zip(result.successes, result.failures, result.rejections, strict=True)
    ]
    ordered = sorted(totals)
    typical = ordered[int(0.9 * (len(ordered) - 1))]
    cap = 3.0 * max(typical, result.scenario.traffic.peak_rate(), 1.0 / width)
    if ordered[-1] <= cap * 1.2:
        return
    ax.set_ylim(0, cap)
    labelled_until = -math.inf
    spikes = sorted((i for i, total in enumerate(totals) if total > cap), key=lambda i: -totals[i])
    shown = sorted(spikes[:12])
    for i in shown:
        x = (i + 0.5) * width
        if x < labelled_until:
            continue
        ax.annotate(
            f"{totals[i]:,.0f}",
            xy=(x, cap),
            xytext=(0, -2),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=7,
            rotation=90,
            color="#333333",
        )
        labelled_until = x + result.scenario.duration / 80


def _draw_error_rate(ax: Axes, result: RunResult) -> None:
    config = result.policy.breaker
    width = result.sample_width
    times = [k * width for k in range(len(result.window_error_rate))]
    judged = [
        rate if total >= config.volume_threshold else math.nan
        for rate, total in zip(result.window_error_rate, result.window_total, strict=True)
    ]
    unjudged = [
        rate if total < config.volume_threshold else math.nan
        for rate, total in zip(result.window_error_rate, result.window_total, strict=True)
    ]
    ax.step(times, judged, where="post", color="#1f77b4", linewidth=1.2, label="window error rate")
    ax.step(
        times,
        unjudged,
        where="post",
        color="#bbbbbb",
        linewidth=1.2,
        label=f"(window < volume_threshold,\n {config.volume_threshold} outcomes: not judged)",
    )
    ax.axhline(
        config.error_threshold,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"error_threshold ({config.error_threshold:g})",
    )
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("error rate")
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _draw_states(ax: Axes, result: RunResult) -> None:
    duration = result.scenario.duration
    visible = duration / 400.0  # half-open spells last milliseconds: keep them visible
    spans: list[tuple[float, float, CircuitState]] = []
    start, state = 0.0, CircuitState.CLOSED
    for transition in result.transitions:
        spans.append((start, transition.time, state))
        start, state = transition.time, transition.to_state
    spans.append((start, duration, state))
    for begin, end, span_state in spans:
        length = end - begin
        if span_state is CircuitState.HALF_OPEN:
            length = max(length, visible)
        if length > 0:
            ax.broken_barh(
                [(begin, length)],
                (0, 1),
                facecolors=_STATE_COLORS[span_state],
                zorder=3 if span_state is CircuitState.HALF_OPEN else 2,
            )
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=color, label=s.value) for s, color in _STATE_COLORS.items()],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.3),
        fontsize=8,
        frameon=False,
    )
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    ax.set_ylabel("state", rotation=0, ha="right", va="center")
