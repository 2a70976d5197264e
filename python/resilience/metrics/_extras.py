"""The error raised when an adapter is used without the library it adapts."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(adapter: str, module: str, extra: str) -> ImportError:
    """An ImportError saying which extra of ``resilience-rs`` brings ``module``.

    Raise it ``from`` the original ImportError so the underlying cause stays visible.
    """
    return ImportError(
        f"{adapter} needs the {module!r} package, which is not installed; "
        f"install it with: pip install 'resilience-rs[{extra}]'",
        name=module,
    )
