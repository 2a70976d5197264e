"""Watch a circuit breaker and a retry policy live through an outage, in virtual time.

``python -m resilience simulate`` runs the real ``CircuitBreaker`` and ``Retry`` against a
scenario (traffic, and phases of the dependency's health) on a ``ManualClock``: ten minutes of
traffic take seconds. The same in code::

    from resilience.simulate import build_policy, load_scenario, render_text, simulate

    scenario = load_scenario("outage")            # or a path to a TOML file
    main, other = build_policy(compare_items=["preset=critical"])
    results = [simulate(scenario, main), simulate(scenario, other)]
    print(render_text(results))

Modules: ``scenario`` (the TOML format), ``policy`` (settings and presets), ``engine`` (the
virtual-time loop), ``report`` (the numbers, text and JSON), ``plot`` (matplotlib), ``cli``.
"""

from .engine import DependencyError, PhaseCounts, RunResult, Transition, simulate
from .plot import PlotUnavailableError, plot_available, write_plot
from .policy import PRESETS, Policy, PolicyError, build_policy
from .report import Incident, Summary, incidents, render_text, summarize, to_json
from .scenario import HealthPhase, Scenario, ScenarioError, Traffic, load_scenario, parse_scenario

__all__ = [
    "PRESETS",
    "DependencyError",
    "HealthPhase",
    "Incident",
    "PhaseCounts",
    "PlotUnavailableError",
    "Policy",
    "PolicyError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Summary",
    "Traffic",
    "Transition",
    "build_policy",
    "incidents",
    "load_scenario",
    "parse_scenario",
    "plot_available",
    "render_text",
    "simulate",
    "summarize",
    "to_json",
    "write_plot",
]
