"""Extraction schemas and eval prompts: named prompts over a conversation transcript."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FieldType = Literal["string", "int", "float", "bool", "string[]", "int[]", "float[]", "bool[]"]


class ExtractionField(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=64)
    type: FieldType
    description: str | None = None


class ExtractionSchemaSpec(BaseModel):
    """A named prompt plus typed fields to extract from a transcript."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=128)
    prompt: str = ""
    fields: list[ExtractionField] = Field(default_factory=list)

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[ExtractionField]) -> list[ExtractionField]:
        names = [f.name for f in value]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        return value


class EvalPromptSpec(BaseModel):
    """A named yes/no question asked of a finished conversation."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=128)
    prompt: str = Field(min_length=1)
