"""Extraction schemas and eval prompts: named prompts over a conversation transcript."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openline.domain.limits import (
    MAX_EXTRACTION_FIELDS,
    DescriptionText,
    NameText,
    PromptText,
    ShortText,
    check_document_size,
)
from openline.domain.project import Ref
from openline.domain.unset import UNSET, Changes, Unset
from openline.domain.validation import parse

FieldType = Literal["string", "int", "float", "bool", "string[]", "int[]", "float[]", "bool[]"]


class ExtractionField(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: ShortText = Field(min_length=1, max_length=64)
    type: FieldType
    description: DescriptionText | None = None


class ExtractionSchemaSpec(BaseModel):
    """A named prompt plus typed fields to extract from a transcript."""

    model_config = ConfigDict(extra="ignore")

    name: NameText = Field(min_length=1)
    prompt: PromptText = ""
    fields: list[ExtractionField] = Field(default_factory=list, max_length=MAX_EXTRACTION_FIELDS)

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[ExtractionField]) -> list[ExtractionField]:
        names = [f.name for f in value]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        return value

    @model_validator(mode="after")
    def _size(self) -> ExtractionSchemaSpec:
        check_document_size(self)
        return self


class EvalPromptSpec(BaseModel):
    """A named yes/no question asked of a finished conversation."""

    model_config = ConfigDict(extra="ignore")

    name: NameText = Field(min_length=1)
    prompt: PromptText = Field(min_length=1)


@dataclass(frozen=True)
class ExtractionSchema:
    """A stored extraction schema."""

    id: str
    project: Ref
    spec: ExtractionSchemaSpec

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ExtractionSchemaChanges(Changes):
    """Some fields of an ``ExtractionSchemaSpec``; the others are ``UNSET``."""

    name: str | Unset = UNSET
    prompt: str | Unset = UNSET
    fields: list[ExtractionField] | Unset = UNSET


def apply_schema_changes(spec: ExtractionSchemaSpec,
                         changes: ExtractionSchemaChanges) -> ExtractionSchemaSpec:
    """``spec`` with ``changes`` applied, validated as a whole (``ValidationFailed``)."""
    return parse(ExtractionSchemaSpec, {**spec.model_dump(), **changes.given()})


def schema_changes_from(fields: Mapping[str, Any]) -> ExtractionSchemaChanges:
    """Validate ``{field: value}`` one field at a time into ``ExtractionSchemaChanges``."""
    known = {k: v for k, v in fields.items() if k in ExtractionSchemaSpec.model_fields}
    model = parse(ExtractionSchemaSpec, {"name": "x", **known})
    return ExtractionSchemaChanges.of({k: getattr(model, k) for k in known})


@dataclass(frozen=True)
class EvalPrompt:
    """A stored eval prompt of a project."""

    id: str
    name: str
    prompt: str
