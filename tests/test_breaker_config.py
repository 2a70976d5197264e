"""CircuitBreakerConfig: defaults, validation of every field, durations, and how CircuitBreaker
takes a config, keyword arguments, or both."""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from datetime import timedelta
from typing import Any

import pytest

from resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    NoopCollector,
    default_error_classifier,
)
from resilience._core import MAX_HALF_OPEN_REQUESTS
from resilience.testing import ManualClock

NAN, INF = math.nan, math.inf

FLOAT_FIELDS = ["error_threshold", "success_threshold", "sleep_window_multiplier"]
DURATION_FIELDS = ["sleep_window", "window_size", "max_sleep_window"]
INT_FIELDS = ["volume_threshold", "half_open_requests", "bucket_count", "failure_threshold"]


def raises_naming(exc_type: type[Exception], field: str, value: Any):
    """pytest.raises whose message must name the field and then the value's repr."""
    return pytest.raises(exc_type, match=rf"{field}\b.*{re.escape(repr(value))}")


# ----- defaults ----------------------------------------------------------------------------------


def test_defaults_equal_the_contract_table():
    cfg = CircuitBreakerConfig()
    assert dataclasses.asdict(cfg) | {"logger": None, "error_classifier": None} == {
        "name": "default",
        "error_threshold": 0.5,
        "volume_threshold": 10,
        "sleep_window": 30.0,
        "half_open_requests": 5,
        "success_threshold": 0.6,
        "window_size": 60.0,
        "bucket_count": 10,
        "failure_threshold": 0,
        "sleep_window_multiplier": 1.5,
        "max_sleep_window": 300.0,
        "error_classifier": None,
        "logger": None,
        "metrics": None,
        "clock": None,
    }
    assert cfg.error_classifier is default_error_classifier
    assert cfg.logger is logging.getLogger("resilience")


def test_config_is_frozen_and_keyword_only():
    cfg = CircuitBreakerConfig(name="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.error_threshold = 0.9  # type: ignore[misc]
    with pytest.raises(TypeError):
        CircuitBreakerConfig("x")  # type: ignore[misc]


# ----- name --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_empty_or_blank_name_is_a_value_error(name):
    with raises_naming(ValueError, "name", name):
        CircuitBreakerConfig(name=name)


@pytest.mark.parametrize("name", [None, 5, b"payments"])
def test_non_string_name_is_a_type_error(name):
    with raises_naming(TypeError, "name", name):
        CircuitBreakerConfig(name=name)


# ----- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", FLOAT_FIELDS + DURATION_FIELDS)
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_nan_and_infinities_are_value_errors_for_float_fields(field, value):
    with raises_naming(ValueError, field, value):
        CircuitBreakerConfig(**{field: value})


@pytest.mark.parametrize("field", FLOAT_FIELDS + DURATION_FIELDS + INT_FIELDS)
@pytest.mark.parametrize("value", [True, False, "1", None, [1]])
def test_bool_str_and_other_types_are_type_errors(field, value):
    with raises_naming(TypeError, field, value):
        CircuitBreakerConfig(**{field: value})


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [1.5, 2.25, -0.5])
def test_non_integral_float_for_an_int_field_is_a_type_error(field, value):
    with raises_naming(TypeError, field, value):
        CircuitBreakerConfig(**{field: value})


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [NAN, INF])
def test_nan_or_inf_for_an_int_field_is_rejected_naming_field_and_value(field, value):
    # NaN and inf are at once "not finite" (ValueError) and "not integral" (TypeError): either way
    # the message must name the field and the value.
    with raises_naming((TypeError, ValueError), field, value):
        CircuitBreakerConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("error_threshold", -0.01),
        ("error_threshold", 1.01),
        ("success_threshold", -1),
        ("success_threshold", 2),
        ("sleep_window_multiplier", 0.99),
        ("sleep_window_multiplier", 0),
        ("sleep_window", -1),
        ("window_size", 0),
        ("window_size", -0.5),
        ("max_sleep_window", -30),
        ("volume_threshold", -1),
        ("half_open_requests", 0),
        ("half_open_requests", MAX_HALF_OPEN_REQUESTS + 1),
        ("bucket_count", 0),
        ("bucket_count", -3),
        ("failure_threshold", -1),
    ],
)
def test_out_of_range_values_are_value_errors(field, value):
    with raises_naming(ValueError, field, value):
        CircuitBreakerConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("error_threshold", 0.0),
        ("error_threshold", 1.0),
        ("success_threshold", 0),
        ("success_threshold", 1),
        ("sleep_window_multiplier", 1.0),
        ("sleep_window", 0.0),
        ("volume_threshold", 0),
        ("half_open_requests", 1),
        ("half_open_requests", MAX_HALF_OPEN_REQUESTS),
        ("bucket_count", 1),
        ("failure_threshold", 0),
    ],
)
def test_boundary_values_are_accepted(field, value):
    assert getattr(CircuitBreakerConfig(**{field: value}), field) == value


def test_integral_float_for_an_int_field_is_taken_as_that_int():
    cfg = CircuitBreakerConfig(volume_threshold=20.0, bucket_count=4.0)
    assert (cfg.volume_threshold, cfg.bucket_count) == (20, 4)
    assert type(cfg.volume_threshold) is int
    assert type(cfg.bucket_count) is int


def test_number_fields_are_stored_as_float():
    cfg = CircuitBreakerConfig(
        error_threshold=1, success_threshold=0, sleep_window_multiplier=2, sleep_window=5
    )
    for field in ("error_threshold", "success_threshold", "sleep_window_multiplier"):
        assert type(getattr(cfg, field)) is float
    assert cfg.sleep_window == 5.0
    assert type(cfg.sleep_window) is float


# ----- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", DURATION_FIELDS)
def test_timedelta_durations_are_stored_as_float_seconds(field):
    cfg = CircuitBreakerConfig(**{field: timedelta(minutes=1, milliseconds=250)})
    value = getattr(cfg, field)
    assert value == 60.25
    assert type(value) is float


def test_sleep_window_timedelta_reads_as_the_contract_example():
    assert CircuitBreakerConfig(sleep_window=timedelta(seconds=5)).sleep_window == 5.0


@pytest.mark.parametrize("field", DURATION_FIELDS)
def test_negative_timedelta_is_a_value_error(field):
    with pytest.raises(ValueError, match=rf"{field}\b.*-1\.0"):
        CircuitBreakerConfig(**{field: timedelta(seconds=-1)})


def test_max_sleep_window_below_sleep_window_is_a_value_error_naming_both():
    with pytest.raises(ValueError, match=r"max_sleep_window.*10.*sleep_window.*20"):
        CircuitBreakerConfig(sleep_window=20, max_sleep_window=10)


def test_window_too_short_for_its_buckets_is_a_value_error():
    with pytest.raises(ValueError, match=r"window_size.*bucket_count"):
        CircuitBreakerConfig(window_size=1e-8, bucket_count=100)


# ----- callables and collaborators ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("error_classifier", "not callable"),
        ("error_classifier", None),
        ("logger", "resilience"),
        ("logger", None),
        ("metrics", object()),
        ("clock", 12.0),
        ("clock", object()),
    ],
)
def test_wrong_collaborator_types_are_type_errors_naming_the_field(field, value):
    with pytest.raises(TypeError, match=field):
        CircuitBreakerConfig(**{field: value})


def test_collaborators_of_the_right_kind_are_accepted():
    clock = ManualClock()
    adapter = logging.LoggerAdapter(logging.getLogger("app"), {})
    cfg = CircuitBreakerConfig(
        error_classifier=lambda exc: True, logger=adapter, metrics=NoopCollector(), clock=clock
    )
    assert cfg.clock is clock
    assert cfg.logger is adapter


def test_metrics_collector_missing_a_method_is_named_in_the_error():
    class Partial:
        def record_success(self, name: str) -> None: ...

    with pytest.raises(TypeError, match=r"metrics.*record_failure"):
        CircuitBreakerConfig(metrics=Partial())


# ----- building a CircuitBreaker -----------------------------------------------------------------


def test_breaker_from_keywords_builds_its_config():
    cb = CircuitBreaker(name="payments", error_threshold=0.3, sleep_window=timedelta(seconds=9))
    assert cb.name == "payments"
    assert cb.config == CircuitBreakerConfig(
        name="payments",
        error_threshold=0.3,
        sleep_window=9.0,
        logger=cb.config.logger,
    )


def test_breaker_from_config_keeps_that_config():
    cfg = CircuitBreakerConfig(name="x", volume_threshold=3)
    cb = CircuitBreaker(cfg)
    assert cb.config is cfg
    assert cb.name == "x"


def test_breaker_overrides_change_only_the_named_fields_and_are_validated():
    cfg = CircuitBreakerConfig(name="x", volume_threshold=3, error_threshold=0.2)
    cb = CircuitBreaker(cfg, error_threshold=0.7)
    assert (cb.config.name, cb.config.volume_threshold, cb.config.error_threshold) == ("x", 3, 0.7)
    assert cfg.error_threshold == 0.2
    with raises_naming(ValueError, "error_threshold", 7):
        CircuitBreaker(cfg, error_threshold=7)
    with pytest.raises(TypeError):
        CircuitBreaker(cfg, no_such_field=1)


def test_breaker_rejects_a_positional_argument_that_is_not_a_config():
    with pytest.raises(TypeError, match="CircuitBreakerConfig"):
        CircuitBreaker("payments")  # type: ignore[arg-type]


def test_breaker_from_invalid_keywords_raises_like_the_config():
    with raises_naming(ValueError, "name", ""):
        CircuitBreaker(name="")
    with raises_naming(TypeError, "bucket_count", True):
        CircuitBreaker(name="x", bucket_count=True)


def test_config_replace_validates_again():
    cfg = CircuitBreakerConfig(name="x")
    assert cfg.replace(volume_threshold=1).volume_threshold == 1
    with raises_naming(ValueError, "volume_threshold", -1):
        cfg.replace(volume_threshold=-1)
