"""Build `Settings` from a TOML file and the environment, and explain what is wrong in sentences.

Precedence, lowest first: the defaults (`config.settings`), then a TOML file
(`TAOGRAM_CONFIG=path` or `load_settings(path)`), then environment variables named
`TAOGRAM_<SECTION>__<FIELD>` (e.g. `TAOGRAM_CACHE__BACKEND=memcached`). A variable's value is
parsed as a TOML value when it parses (numbers, booleans, arrays, inline tables), else kept as a
string. A variable replaces the file's value of that field as a whole (a list or a table too).

A value pydantic refuses becomes one sentence naming the setting, what is allowed and what it
got, and where it came from when that was not the file (`store.pool_max must be between 1 and
1000 (got 0, from TAOGRAM_STORE__POOL_MAX)`); all of them are raised together as one
`ConfigError`. Nothing here does I/O beyond reading the file.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

from config.settings import ConfigError, Settings

ENV_PREFIX = "TAOGRAM_"


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the defaults, then the TOML file, then `TAOGRAM_*` variables (of `env`,
    default `os.environ`). Raises `ConfigError` listing every bad value."""
    env = os.environ if env is None else env
    path = path or env.get(ENV_PREFIX + "CONFIG")
    values = _read_toml(Path(path)) if path else {}
    from_env = TomlValuedEnvSource(Settings, env)
    for section, fields in from_env().items():
        if isinstance(values.get(section), dict):
            values[section] = {**values[section], **fields}
        else:
            values[section] = fields
    try:
        return Settings(**values)
    except ValidationError as exc:
        sentences = [_sentence(error, from_env.origins) for error in exc.errors(include_url=False)]
        where = f" (file {path})" if path else ""
        if len(sentences) == 1:
            raise ConfigError(sentences[0] + where) from None
        raise ConfigError(f"{len(sentences)} settings are invalid{where}:\n  " + "\n  ".join(sentences)) from None


def load_settings_or_exit(path: str | os.PathLike[str] | None = None) -> Settings:
    """`load_settings` for command-line entry points: bad settings end the process with their
    sentences on stderr and exit status 1, as a message for the operator, not a traceback."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise SystemExit(f"taogram: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (from --config or TAOGRAM_CONFIG)")
    try:
        return dict(TomlConfigSettingsSource(Settings, toml_file=path)())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


class TomlValuedEnvSource(PydanticBaseSettingsSource):
    """`TAOGRAM_<SECTION>__<FIELD>` variables as `{section: {field: value}}`, each value parsed as
    a TOML value when it parses. `origins` maps (section, field) to the variable's name."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env = env
        self.origins: dict[tuple[str, str], str] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Required by the base class; `__call__` reads whole sections instead.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, dict[str, Any]] = {}
        for name, value in self.env.items():
            if not name.startswith(ENV_PREFIX) or "__" not in name:
                continue
            section, _, field = name[len(ENV_PREFIX):].lower().partition("__")
            values.setdefault(section, {})[field] = parse_env_value(value)
            self.origins[(section, field)] = name
        return values


def parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


# ---- one sentence per refused value ----------------------------------------------------------------

_KINDS = {
    "int_type": "an integer", "int_parsing": "an integer", "float_type": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a table", "model_type": "a table",
}


def _sentence(error: ErrorDetails, origins: Mapping[tuple[str, str], str]) -> str:
    loc = error["loc"]
    name = _dotted(loc)
    kind, got, ctx = error["type"], error["input"], error.get("ctx") or {}
    origin = origins.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else next(
        (var for (section, _), var in origins.items() if section == loc[0]), None)
    got_text = f"got {got!r}" + (f", from {origin}" if origin else "")
    if kind == "value_error":  # a rule between fields: the validator's own sentence
        return str(ctx.get("error", error["msg"]))
    if kind == "extra_forbidden":
        return _unknown(loc, origin)
    if kind in _KINDS:
        return f"{name} must be {_KINDS[kind]} ({got_text})"
    if kind == "enum":
        return f"{name} must be {ctx['expected']} ({got_text})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"{name} must be {_bounds(loc, ctx)} ({got_text})"
    if kind == "too_short":
        return f"{name} must have at least {ctx.get('min_length')} item(s) ({got_text})"
    return f"{name}: {error['msg']} ({got_text})"


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field(loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The declaration of the field at `loc` (a list item's: its list's field)."""
    model: type[BaseModel] = Settings
    field = None
    for part in loc:
        if isinstance(part, int):  # an item of a list: its model is already `model`
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = _item_type(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
    return field


def _item_type(annotation: Any) -> Any:
    """`X` for `list[X]`, else the annotation itself."""
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else annotation


def _bounds(loc: tuple[int | str, ...], ctx: Mapping[str, Any]) -> str:
    """What a numeric value allows: its declared bounds, or (for an item of a list) its item type's."""
    field = _field(loc)
    metadata: list[Any] = []
    if field is not None:
        metadata = list(field.metadata)
        if isinstance(loc[-1], int):
            item = _item_type(field.annotation)
            metadata = [m for info in typing.get_args(item)[1:] for m in getattr(info, "metadata", [info])]
    limits = dict(ctx)
    for m in metadata:
        for key in ("ge", "gt", "le", "lt"):
            if isinstance(m, getattr(annotated_types, key.capitalize())):
                limits[key] = getattr(m, key)
    lo, hi = limits.get("ge"), limits.get("le")
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    parts = [f"at least {lo}" if lo is not None else "", f"more than {limits['gt']}" if "gt" in limits else "",
             f"at most {hi}" if hi is not None else "", f"less than {limits['lt']}" if "lt" in limits else ""]
    return " and ".join(p for p in parts if p)


def _unknown(loc: tuple[int | str, ...], origin: str | None) -> str:
    name = _dotted(loc)
    parent = _field(loc[:-1]) if len(loc) > 1 else None
    model = _item_type(parent.annotation) if parent is not None else Settings
    known = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    what = "section" if len(loc) == 1 else "setting"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known)}"
    return f"{name} is not a {what}" + (f" (from {origin})" if origin else "") + hint
