"""``python -m resilience simulate``: the command line, its JSON, its errors and its plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resilience.__main__ import main
from resilience.simulate import parse_scenario
from resilience.simulate.plot import PlotUnavailableError, write_plot

TINY = """\
name = "tiny"

[traffic]
rate = 10
arrivals = "uniform"

[[phases]]
name = "healthy"
duration = 1
latency = 0.01

[[phases]]
name = "down"
duration = 1
error_rate = 1.0
latency = 0.01

[[phases]]
name = "recovered"
duration = 2
latency = 0.01
"""

BREAKER = [
    "failure_threshold=3",
    "volume_threshold=1000000",
    "sleep_window=1.0",
    "half_open_requests=1",
    "success_threshold=1.0",
]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_cli_json_through_a_subprocess_reports_the_hand_checked_run(tiny: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "resilience",
            "simulate",
            str(tiny),
            "--breaker",
            *BREAKER,
            "--retry",
            "max_attempts=1",
            "--compare",
            "sleep_window=0.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["scenario"]["name"] == "tiny"
    assert [p["healthy"] for p in document["scenario"]["phases"]] == [True, False, True]
    main_run, other_run = document["runs"]
    assert main_run["breaker"]["failure_threshold"] == 3
    assert main_run["retry"]["max_attempts"] == 1
    assert other_run["label"] == "sleep_window=0.5"
    assert other_run["breaker"]["sleep_window"] == 0.5
    summary = main_run["summary"]
    assert summary["requests"] == 40
    assert summary["time_to_open"] == 0.21
    assert summary["failing_calls_let_through"] == 3
    assert summary["false_rejections"] == 3
    assert summary["time_to_close"] == 0.31
    assert summary["trial_calls"] == 1
    assert summary["retry_amplification"] == 1.0
    assert [(t["time"], t["from"], t["to"], t["phase"]) for t in main_run["transitions"]] == [
        (1.21, "closed", "open", "down"),
        (2.3, "open", "half-open", "recovered"),
        (2.31, "half-open", "closed", "recovered"),
    ]
    # A shorter sleep window: the trial comes at 1.8 s, during the outage, and fails. The window
    # still holds the 10 healthy successes next to the 3 failures.
    assert other_run["transitions"][1:3] == [
        {
            "time": 1.8,
            "from": "open",
            "to": "half-open",
            "phase": "down",
            "window_error_rate": 0.230769,
            "window_total": 13,
        },
        {
            "time": 1.81,
            "from": "half-open",
            "to": "open",
            "phase": "down",
            "window_error_rate": 0.230769,
            "window_total": 13,
        },
    ]


NOISY = """\
timeout = 0.5
[traffic]
rate = 60
[[phases]]
duration = 8
error_rate = 0.02
latency = { kind = "lognormal", median = 0.05, p99 = 0.4 }
[[phases]]
duration = 8
error_rate = 0.7
timeout_rate = 0.1
latency = { kind = "exponential", mean = 0.2 }
[[phases]]
duration = 8
latency = { kind = "uniform", low = 0.01, high = 0.1 }
"""


def test_json_is_identical_across_processes_for_the_same_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "noisy.toml"
    path.write_text(NOISY)
    argv = ["simulate", str(path), "--preset", "critical", "--seed", "9", "--json"]
    completed = subprocess.run(
        [sys.executable, "-m", "resilience", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert main(argv) == 0
    in_process = capsys.readouterr().out
    assert completed.stdout == in_process
    assert json.loads(in_process)["runs"][0]["transitions"], "the breaker should have moved"


def test_text_output_has_timeline_and_summary_table(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", str(tiny), "--breaker", *BREAKER, "--retry", "max_attempts=1"]) == 0
    out = capsys.readouterr().out
    assert "Scenario 'tiny'" in out
    assert "1.21 s  down" in out
    assert "closed -> open" in out
    for row in (
        "time to open after outage began",
        "failing calls let through",
        "false rejections (while healthy)",
        "time to close after recovery",
        "trial calls (half-open)",
        "retry amplification (attempts/request)",
    ):
        assert row in out


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    return captured.err


def test_invalid_breaker_value_is_reported_by_the_config_without_traceback(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(["simulate", str(tiny), "--breaker", "error_threshold=1.5"], capsys)
    assert err == (
        "python -m resilience simulate: error: --breaker: "
        "CircuitBreakerConfig.error_threshold must be <= 1.0, got 1.5\n"
    )


def test_wrong_type_and_unknown_field_are_named(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(["simulate", str(tiny), "--breaker", "volume_threshold=ten"], capsys)
    assert "CircuitBreakerConfig.volume_threshold" in err
    err = _fails(["simulate", str(tiny), "--retry", "max_atempts=2"], capsys)
    assert "--retry: unknown retry field 'max_atempts' (did you mean 'max_attempts'?)" in err
    err = _fails(["simulate", str(tiny), "--compare", "retry.max_delay=0.01"], capsys)
    assert "--compare: RetryConfig.max_delay" in err


def test_item_without_equals_sign_hints_at_argument_order(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(["simulate", "--breaker", "sleep_window=5", str(tiny)], capsys)
    assert "--breaker expects KEY=VALUE items" in err
    assert "put the scenario name before the options" in err


def test_bad_scenario_file_is_reported_with_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[traffic]\nrate = 10\n[[phases]]\nduration = -1\n")
    err = _fails(["simulate", str(path)], capsys)
    assert f"{path}:4: phases[0].duration: must be > 0, got -1" in err


def test_preset_option_and_breaker_preset_must_agree(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(["simulate", str(tiny), "--preset", "stable", "--breaker", "preset=flaky"], capsys)
    assert "disagree" in err


def test_preset_sets_the_tuning_profile_thresholds(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", str(tiny), "--preset", "critical", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["label"] == "preset=critical"
    assert (run["breaker"]["error_threshold"], run["breaker"]["volume_threshold"]) == (0.2, 10)


def test_list_and_show_describe_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("outage", "flapping", "brownout", "slow", "low-traffic"):
        assert name in listed
    assert main(["simulate", "brownout", "--show"]) == 0
    shown = capsys.readouterr().out
    assert parse_scenario(shown).name == "brownout"


def test_demo_command_is_still_available(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0
    assert "--rate" in capsys.readouterr().out


def test_plot_file_is_written_with_both_configurations(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "run.png"
    argv = ["simulate", str(tiny), "--breaker", *BREAKER, "--compare", "preset=critical"]
    assert main([*argv, "--plot", str(out), "--json"]) == 0
    json.loads(capsys.readouterr().out)  # stdout stays pure JSON
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_missing_matplotlib_names_the_extra(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)
    err = _fails(["simulate", str(tiny), "--plot", str(tmp_path / "x.png")], capsys)
    assert "pip install 'resilience-rs[plot]'" in err
    with pytest.raises(PlotUnavailableError, match=r"resilience-rs\[plot\]"):
        write_plot([], tmp_path / "y.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_into_a_missing_folder_fails_before_running(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    err = _fails(["simulate", str(tiny), "--plot", str(tmp_path / "nope" / "x.png")], capsys)
    assert "cannot write the plot" in err
