"""The built-in scenarios, as TOML text (``python -m resilience simulate NAME --show`` prints one,
a good start for a scenario file of your own)."""

from __future__ import annotations

__all__ = ["BUILTIN_SCENARIOS"]

_HEALTHY = """\
error_rate = 0.01
latency = { kind = "lognormal", median = 0.05, p99 = 0.25 }
"""

OUTAGE = f"""\
name = "outage"
description = "Healthy for 3 minutes, hard down for 2 (every call fails fast), recovered for 5."
timeout = 1.0

[traffic]
rate = 200

[[phases]]
name = "healthy"
duration = 180
{_HEALTHY}
[[phases]]
name = "down"
duration = 120
error_rate = 1.0
error_latency = {{ kind = "uniform", low = 0.001, high = 0.005 }}   # connection refused

[[phases]]
name = "recovered"
duration = 300
{_HEALTHY}"""

_FLAP_DOWN = """
[[phases]]
name = "down"
duration = 20
error_rate = 1.0
error_latency = 0.002
"""

_FLAP_UP = f"""
[[phases]]
name = "up"
duration = 40
{_HEALTHY}"""

FLAPPING = f"""\
name = "flapping"
description = "Healthy for a minute, then down 20 s and up 40 s, five times over."
timeout = 1.0

[traffic]
rate = 100

[[phases]]
name = "healthy"
duration = 60
{_HEALTHY}{(_FLAP_DOWN + _FLAP_UP) * 5}"""

BROWNOUT = f"""\
name = "brownout"
description = "Four minutes in which 30% of calls fail and the rest are slow, with a traffic spike."
timeout = 2.0

[traffic]
rate = 150

[[traffic.bursts]]              # clients pile on while the dependency struggles
at = 200
duration = 20
rate = 300

[[phases]]
name = "healthy"
duration = 120
{_HEALTHY}
[[phases]]
name = "brownout"
duration = 240
error_rate = 0.3
latency = {{ kind = "lognormal", median = 0.2, p99 = 1.5 }}

[[phases]]
name = "recovered"
duration = 240
{_HEALTHY}"""

SLOW = """\
name = "slow"
description = "Latency climbs minute by minute past the 1 s client timeout, then recovers."
timeout = 1.0

[traffic]
rate = 100

[[phases]]
name = "healthy"
duration = 60
latency = { kind = "lognormal", median = 0.1, p99 = 0.4 }

[[phases]]
name = "slower"
duration = 60
latency = { kind = "lognormal", median = 0.3, p99 = 0.9 }

[[phases]]
name = "slow"
duration = 60
latency = { kind = "lognormal", median = 0.6, p99 = 1.6 }

[[phases]]
name = "crawling"
duration = 60
latency = { kind = "lognormal", median = 1.2, p99 = 3.0 }

[[phases]]
name = "stalled"
duration = 60
timeout_rate = 0.2
latency = { kind = "lognormal", median = 2.5, p99 = 5.0 }

[[phases]]
name = "recovered"
duration = 180
latency = { kind = "lognormal", median = 0.1, p99 = 0.4 }
"""

LOW_TRAFFIC = f"""\
name = "low-traffic"
description = "One request every 20 s: a 60 s window barely holds enough calls to judge."
timeout = 1.0

[traffic]
rate = 0.05

[[phases]]
name = "healthy"
duration = 300
{_HEALTHY}
[[phases]]
name = "down"
duration = 300
error_rate = 1.0
error_latency = 0.002

[[phases]]
name = "recovered"
duration = 600
{_HEALTHY}"""

BUILTIN_SCENARIOS: dict[str, str] = {
    "outage": OUTAGE,
    "flapping": FLAPPING,
    "brownout": BROWNOUT,
    "slow": SLOW,
    "low-traffic": LOW_TRAFFIC,
}
"""Built-in scenario TOML by name."""
