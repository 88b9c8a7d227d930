"""The explicit "unset" of partial updates: a field that was not sent is not a field set to null.

A PATCH body distinguishes three cases per field: absent (leave it), ``null`` (clear it)
and a value (set it). Python's ``None`` can only name one of the first two, so change
objects default every field to :data:`UNSET` instead.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Final, Self, TypeGuard, TypeVar

T = TypeVar("T")


class Unset(enum.Enum):
    """The type of :data:`UNSET` (an enum, so type checkers narrow ``x is UNSET``)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: "This field was not given": leave the current value as it is.
UNSET: Final = Unset.UNSET


def is_set(value: T | Unset) -> TypeGuard[T]:
    """True when ``value`` was given (``None`` counts as given: it clears the field)."""
    return value is not UNSET


def or_else(value: T | Unset, default: T) -> T:
    """``value`` when it was given, else ``default``."""
    return default if isinstance(value, Unset) else value


@dataclasses.dataclass(frozen=True)
class Changes:
    """Base of the change objects: frozen dataclasses whose fields default to ``UNSET``."""

    def given(self) -> dict[str, Any]:
        """The fields that were given, with their values, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not UNSET}

    def is_empty(self) -> bool:
        """True when no field was given."""
        return not self.given()

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """Every field a change object of this kind can carry."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Self:
        """A change object from ``{field: value}`` (unknown keys are ignored)."""
        names = cls.field_names()
        return cls(**{k: v for k, v in values.items() if k in names})
