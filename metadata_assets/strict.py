"""Config models that take YAML's own scalar types only: no 1 for true, no true for 1, no "10" or 10.0 for 10, except
a string that `${VAR}` expansion produced (config._expand), which is parsed. Shared by every block of the sources
config (source_config.py, change_config.py)."""

from __future__ import annotations

import types
import typing
from typing import Optional

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class FromEnv(str):
    """A string that `${VAR}` expansion produced (config._expand): the only string a number or a boolean field
    accepts, so `port: ${DB_PORT:-3306}` works while `port: "3306"` and `batch_size: true` are refused."""


def _scalar_kind(annotation) -> Optional[type]:
    """bool, int or float when a field holds that scalar (Optional included), else None."""
    args = (
        [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else [annotation]
    )
    return args[0] if len(args) == 1 and args[0] in (bool, int, float) else None


def _strict_scalar(kind: type, value):
    """`value` for a bool/int/float field, or ValueError: YAML's own types only (no 1 for true, no true for 1,
    no "10" or 10.0 for 10), except a string from `${VAR}` that spells one."""
    if isinstance(value, FromEnv):
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError
                return text.lower() == "true"
            return int(text) if kind is int else float(text)
        except ValueError:
            want = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
            raise ValueError(f"the environment variable gave {str(value)!r}, not {want}") from None
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"Input should be a valid boolean, true or false (got {value!r})")
    elif isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        want = "a valid integer" if kind is int else "a valid number"
        raise ValueError(f"Input should be {want} (got {value!r}{', a boolean' if isinstance(value, bool) else ''})")
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value, info: ValidationInfo):
        kind = _scalar_kind(cls.model_fields[info.field_name].annotation)
        if kind is None or (value is None and cls.model_fields[info.field_name].annotation is not kind):
            return value
        return _strict_scalar(kind, value)
