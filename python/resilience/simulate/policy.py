"""The configurations a simulation compares: breaker and retry settings, presets, ``k=v`` items.

A policy is built in layers, each applied on top of the one before: the library's defaults, the
scenario's ``[breaker]``/``[retry]`` tables, then command-line items. Inside a layer a ``preset``
is applied first and the layer's other fields after it, so ``preset=critical volume_threshold=20``
means "critical, but with a volume threshold of 20". Every value is validated by
``CircuitBreakerConfig`` or ``RetryConfig`` themselves; their messages name the field and value.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..breaker import CircuitBreakerConfig
from ..errors import ConfigurationError
from ..retry import RetryConfig

__all__ = [
    "BREAKER_FIELDS",
    "PRESETS",
    "RETRY_FIELDS",
    "Policy",
    "PolicyError",
    "breaker_config",
    "build_policy",
    "parse_items",
    "retry_config",
]

BREAKER_FIELDS: tuple[str, ...] = (
    "name",
    "error_threshold",
    "volume_threshold",
    "sleep_window",
    "half_open_requests",
    "success_threshold",
    "window_size",
    "bucket_count",
    "failure_threshold",
    "sleep_window_multiplier",
    "max_sleep_window",
)
"""``CircuitBreakerConfig`` fields that can be set from a scenario or the command line."""

RETRY_FIELDS: tuple[str, ...] = (
    "max_attempts",
    "initial_delay",
    "max_delay",
    "backoff_factor",
    "jitter",
    "max_elapsed",
)
"""``RetryConfig`` fields that can be set from a scenario or the command line."""

PRESETS: dict[str, dict[str, Any]] = {
    # A dependable service: judge only with a good sample, open at half the calls failing.
    "stable": {"error_threshold": 0.5, "volume_threshold": 20},
    # A flaky or non-essential one: tolerate many errors, but judge after a few calls.
    "flaky": {"error_threshold": 0.8, "volume_threshold": 5},
    # A critical one (payments, auth): open early, on a moderate sample.
    "critical": {"error_threshold": 0.2, "volume_threshold": 10},
}
"""The three tuning profiles; other fields keep the library's defaults."""

_DEFAULT_BREAKER_NAME = "dependency"
_DEFAULT_RETRY_NAME = "request"
_RETRY_PREFIX = "retry."


class PolicyError(ValueError):
    """A setting that cannot be used.

    Attributes:
        field: the setting's name when the problem is one field (else None).
        reason: the message.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class Policy:
    """One configuration to simulate.

    Attributes:
        label: how reports name it (``default``, ``preset=critical``, ...).
        breaker: the validated breaker settings (no clock or collector yet).
        retry: the validated retry settings (no clock or sleep yet).
    """

    label: str
    breaker: CircuitBreakerConfig
    retry: RetryConfig

    def settings(self) -> dict[str, dict[str, Any]]:
        """The settable fields of both configs, for reports."""
        return {
            "breaker": {f: getattr(self.breaker, f) for f in BREAKER_FIELDS},
            "retry": {f: getattr(self.retry, f) for f in RETRY_FIELDS},
        }


def _field_of(message: str) -> str | None:
    found = re.search(r"(?:CircuitBreakerConfig|RetryConfig)\.(\w+)", message)
    return found.group(1) if found else None


def _expand_preset(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's fields (if any) with the other settings on top."""
    fields = dict(settings)
    preset = fields.pop("preset", None)
    if preset is None:
        return fields
    if not isinstance(preset, str) or preset not in PRESETS:
        raise PolicyError(
            f"preset must be one of {', '.join(PRESETS)}, got {preset!r}", field="preset"
        )
    return {**PRESETS[preset], **fields}


def breaker_config(settings: Mapping[str, Any]) -> CircuitBreakerConfig:
    """A validated ``CircuitBreakerConfig`` from settable fields (and an optional ``preset``).

    Raises:
        PolicyError: an unknown field, a bad preset, or a value the config refuses.
    """
    fields = _expand_preset(settings)
    _check_names(fields, BREAKER_FIELDS, "breaker")
    fields.setdefault("name", _DEFAULT_BREAKER_NAME)
    try:
        return CircuitBreakerConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise PolicyError(str(exc), field=_field_of(str(exc))) from None


def retry_config(settings: Mapping[str, Any]) -> RetryConfig:
    """A validated ``RetryConfig`` from settable fields.

    Raises:
        PolicyError: an unknown field or a value the config refuses.
    """
    fields = dict(settings)
    _check_names(fields, RETRY_FIELDS, "retry")
    try:
        return RetryConfig(name=_DEFAULT_RETRY_NAME, **fields)
    except (TypeError, ValueError, ConfigurationError) as exc:
        raise PolicyError(str(exc), field=_field_of(str(exc))) from None


def _check_names(fields: Iterable[str], allowed: tuple[str, ...], what: str) -> None:
    for name in fields:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PolicyError(
                f"unknown {what} field {name!r}{hint}; fields: {', '.join(allowed)}", field=name
            )


def _literal(text: str) -> Any:
    """A command-line value: a Python literal (``0.3``, ``10``, ``"full"``, ``None``), the
    lower-case TOML spellings ``true``, ``false``, ``none``, or else the text itself."""
    words = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in words:
        return words[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_items(items: Sequence[str], option: str) -> list[tuple[str, Any]]:
    """Splits ``KEY=VALUE`` items; values are parsed as literals (see ``_literal``).

    Raises:
        PolicyError: an item without ``=`` or with an empty key.
    """
    pairs: list[tuple[str, Any]] = []
    for item in items:
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise PolicyError(
                f"{option} expects KEY=VALUE items, got {item!r} "
                "(put the scenario name before the options)"
            )
        pairs.append((key, _literal(value.strip())))
    return pairs


def _split_compare(pairs: Sequence[tuple[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    breaker: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    for key, value in pairs:
        if key.startswith(_RETRY_PREFIX):
            retry[key[len(_RETRY_PREFIX) :]] = value
        else:
            breaker[key] = value
    return breaker, retry


def _label(items: Sequence[str]) -> str:
    return " ".join(item.strip() for item in items)


def build_policy(
    *,
    base_breaker: Mapping[str, Any] | None = None,
    base_retry: Mapping[str, Any] | None = None,
    preset: str | None = None,
    breaker_items: Sequence[str] = (),
    retry_items: Sequence[str] = (),
    compare_items: Sequence[str] | None = None,
) -> tuple[Policy, Policy | None]:
    """The main policy and, with ``compare_items``, the one to compare it with.

    Args:
        base_breaker: the scenario's ``[breaker]`` settings.
        base_retry: the scenario's ``[retry]`` settings.
        preset: ``--preset``; the same as a ``preset=`` item in ``breaker_items``.
        breaker_items: ``--breaker`` items (``KEY=VALUE``, ``preset=NAME`` allowed).
        retry_items: ``--retry`` items.
        compare_items: ``--compare`` items applied on top of the main policy; breaker fields,
            ``preset=NAME`` and ``retry.FIELD=VALUE``.

    Raises:
        PolicyError: a malformed item, an unknown field or a value the configs refuse; the
            message names the option.
    """
    breaker_layers: list[dict[str, Any]] = [dict(base_breaker or {})]
    retry_layers: list[dict[str, Any]] = [dict(base_retry or {})]
    main_breaker = dict(parse_items(breaker_items, "--breaker"))
    if preset is not None:
        if main_breaker.get("preset", preset) != preset:
            raise PolicyError(f"--preset {preset} and --breaker preset=... disagree")
        main_breaker = {"preset": preset, **main_breaker}
    breaker_layers.append(main_breaker)
    retry_layers.append(dict(parse_items(retry_items, "--retry")))
    cli_items = [f"preset={preset}"] if preset is not None else []
    cli_items += [*breaker_items, *(f"retry.{item.strip()}" for item in retry_items)]
    if cli_items:
        label = _label(cli_items)
    elif base_breaker or base_retry:
        label = "scenario"
    else:
        label = "default"
    main = _policy(label, breaker_layers, retry_layers, "--breaker", "--retry")
    if compare_items is None:
        return main, None
    extra_breaker, extra_retry = _split_compare(parse_items(compare_items, "--compare"))
    other_label = _label(compare_items) or "same"
    if other_label == label:
        other_label += " (2)"
    other = _policy(
        other_label,
        [*breaker_layers, extra_breaker],
        [*retry_layers, extra_retry],
        "--compare",
        "--compare",
    )
    return main, other


def _policy(
    label: str,
    breaker_layers: Sequence[Mapping[str, Any]],
    retry_layers: Sequence[Mapping[str, Any]],
    breaker_option: str,
    retry_option: str,
) -> Policy:
    breaker: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    try:
        for layer in breaker_layers:
            breaker.update(_expand_preset(layer))
        config = breaker_config(breaker)
    except PolicyError as exc:
        raise PolicyError(f"{breaker_option}: {exc.reason}", exc.field) from None
    try:
        for layer in retry_layers:
            retry.update(layer)
        retry_settings = retry_config(retry)
    except PolicyError as exc:
        raise PolicyError(f"{retry_option}: {exc.reason}", exc.field) from None
    return Policy(label, config, retry_settings)
