"""One typed settings mechanism: every config table is a pydantic model; errors are one line.

Why pydantic (v2): the five tables used to be checked by five hand-written validators that drifted
(NaN passed everywhere, typos were reported differently, secrets were a global name list). A model
states keys, types, bounds and defaults once; this module adds only what pydantic does not know:
the project's one-line error form, which keys are secrets, and environment values.

A feature or provider declares its table as a :class:`Section`::

    class MqttSettings(Section):
        host: str = Field(default="127.0.0.1", description="the broker's host name")
        port: int = Field(default=1883, ge=1, le=65535)
        interval: Seconds = 30.0
        password: Secret | None = None      # a secret: env or password_file, never the file

then reads it with ``read_section(MqttSettings, raw_table, "mqtt")`` (a ``ConfigError`` naming
``mqtt.<key>`` on any mistake) and adds one line to ``exporter/features.py`` so the loader knows
the table exists and ``check-config``/``run`` validate it. Nothing else changes.

Rules every table gets for free:
- an unknown key is refused, with the close match suggested (``regoin`` -> ``region``);
- no implicit conversions (``"5"`` is not a number, ``1`` is not ``true``), and ``nan``/``inf``
  are refused for every number;
- a field typed ``Secret`` may come only from the environment (``CARMETRICS_<PATH>``) or from a
  file named by ``<key>_file``; written in the TOML file it is refused, and its value never
  appears in an error.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError, core_schema

ENV_PREFIX: Final = "CARMETRICS_"

__all__ = [
    "ENV_PREFIX",
    "AccountSection",
    "ConfigError",
    "EnvValue",
    "Field",
    "Seconds",
    "Secret",
    "Section",
    "ShadowingEnvValue",
    "config_error",
    "env_name",
    "invalid",
    "missing",
    "read_error",
    "read_section",
    "required",
]


class ConfigError(ValueError):
    """A single, user-facing line: which key, what was wrong, what is expected."""


class Secret:
    """A string that never shows itself in repr/str/logs; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_to_secret)


def _to_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and value.strip():
        return Secret(value.strip())
    raise PydanticCustomError("secret_empty", "expected a non-empty value")


class EnvValue(str):
    """Text from an environment variable: read as a TOML scalar unless its field wants text."""

    __slots__ = ()


class ShadowingEnvValue(EnvValue):
    """An environment value that replaced one written in the file (a secret there is refused)."""

    __slots__ = ()


# A number of seconds (or any non-negative quantity): finite, never negative.
Seconds = Annotated[float, Field(ge=0)]

M = TypeVar("M", bound="Section")


class Section(BaseModel):
    """Base of every config table (see the module docstring)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        allow_inf_nan=False,
        arbitrary_types_allowed=True,
        hide_input_in_errors=False,
        defer_build=True,  # build validators on first use: `carmetrics --help` never pays for them
    )
    # the message for a missing secret adds this (e.g. "generate one with ...")
    secret_hint: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any, info: ValidationInfo) -> Any:
        """Resolve secrets (env or ``<key>_file``, never the file) and environment text."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        base = (info.context or {}).get("base") or Path.cwd()
        for name, field in cls.model_fields.items():
            if _is_secret(field.annotation):
                value = data.get(name)
                in_file = isinstance(value, str) and not isinstance(value, EnvValue)
                if in_file or isinstance(value, ShadowingEnvValue):
                    raise PydanticCustomError(
                        "secret_in_file", "", {"field": name, "mode": "in_file"}
                    )
                if f"{name}_file" in data:
                    path_value = data.pop(f"{name}_file")
                    if name not in data:  # the environment wins over a file
                        data[name] = _read_secret_file(path_value, name, Path(base))
            elif name in data:
                data[name] = _coerce(data[name], field.annotation)
        return data


def _read_secret_file(path_value: object, name: str, base: Path) -> Secret:
    def fail(why: str) -> PydanticCustomError:
        return PydanticCustomError(
            "secret_file", "{why}", {"field": f"{name}_file", "why": why, "value": path_value}
        )

    if not isinstance(path_value, str) or not path_value:
        raise fail("expected the path of a file holding the secret")
    p = Path(path_value)
    if not p.is_absolute():
        p = base / p
    try:
        text = p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise fail(f"cannot read the secret file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise fail("the secret file is not UTF-8 text") from None
    if not text:
        raise fail("the secret file is empty")
    return Secret(text)


def _parts(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _parts(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(p for a in typing.get_args(annotation) for p in _parts(a))
    return (annotation,)


def _is_secret(annotation: Any) -> bool:
    return Secret in _parts(annotation)


def _wants_text(annotation: Any) -> bool:
    for part in _parts(annotation):
        if part is str:
            return True
        if typing.get_origin(part) is Literal and any(
            isinstance(a, str) for a in typing.get_args(part)
        ):
            return True
    return False


def _coerce(value: Any, annotation: Any) -> Any:
    """Environment text anywhere in ``value`` (also inside a table or list) read for its type."""
    if isinstance(value, EnvValue):
        return _from_env(value, annotation)
    if isinstance(value, dict | list):
        for part in _parts(annotation):
            origin, args = typing.get_origin(part), typing.get_args(part)
            if origin is dict and isinstance(value, dict) and len(args) == 2:
                return {k: _coerce(v, args[1]) for k, v in value.items()}
            if origin in (list, tuple) and isinstance(value, list) and args:
                return [_coerce(v, args[0]) for v in value]
    return value


def _from_env(raw: EnvValue, annotation: Any) -> Any:
    """Environment values are text; a field that is not text reads them as a TOML scalar."""
    if _wants_text(annotation):
        return str(raw)
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return str(raw)


# --- errors ---------------------------------------------------------------------------------------

_NO_VALUE: Final = object()


def invalid(
    why: str, *, field: str | None = None, value: object = _NO_VALUE
) -> PydanticCustomError:
    """For a model check: ``<key> = <value>: <why>``; ``field`` names a key below the model's."""
    ctx: dict[str, Any] = {"why": why}
    if field is not None:
        ctx["field"] = field
    if value is not _NO_VALUE:
        ctx["value"] = value
    return PydanticCustomError("cm_invalid", "{why}", ctx)


def missing(field: str, why: str = "") -> PydanticCustomError:
    """For a model check: ``<key> is missing[: <why>]`` (a secret names where to set it)."""
    return PydanticCustomError("cm_missing", "missing", {"field": field, "why": why})


def key_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def env_name(path: str) -> str:
    """``accounts[0].password`` -> ``CARMETRICS_ACCOUNTS__0__PASSWORD``."""
    flat = path.replace("[", ".").replace("]", "").replace(".", "__")
    return ENV_PREFIX + flat.upper()


def _owner(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model in which ``loc[-1]`` is (or would be) a field."""
    current: type[BaseModel] = model
    i = 0
    while i < len(loc) - 1:
        part = loc[i]
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            # a named sub-table of a model whose other keys are typed extras ([tariffs.<name>])
            extra = _extra_model(current) if isinstance(part, str) else None
            if extra is None:
                return current
            i += 1
            current = extra
            continue
        nested = _nested_model(field.annotation)
        if nested is None:
            return current
        # skip dict keys / list indexes between this field and the nested model
        i += 1 + _container_depth(field.annotation)
        current = nested
    return current


def _extra_model(model: type[BaseModel]) -> type[BaseModel] | None:
    """The model of a table's extra keys, when it types them (``__pydantic_extra__``)."""
    if model.model_config.get("extra") != "allow":
        return None
    hint = typing.get_type_hints(model).get("__pydantic_extra__")
    return _nested_model(hint) if hint is not None else None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for part in _parts(annotation):
        if isinstance(part, type) and issubclass(part, BaseModel):
            return part
        for arg in typing.get_args(part):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _container_depth(annotation: Any) -> int:
    for part in _parts(annotation):
        if typing.get_origin(part) in (dict, list, tuple):
            return 1 + _container_depth(typing.get_args(part)[-1])
    return 0


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    keys = list(model.model_fields)
    keys += [f"{k}_file" for k, f in model.model_fields.items() if _is_secret(f.annotation)]
    return sorted(keys)


_TYPE_WORDS: Final = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "finite_number": "a finite number (not nan or inf)",
    "string_pattern_mismatch": "a non-empty string",
}


def config_error(exc: ValidationError, model: type[BaseModel], prefix: str) -> ConfigError:
    """The first problem of ``exc`` as one line naming ``prefix.<key>``."""
    return _line(dict(exc.errors(include_url=False)[0]), model, prefix)


def read_error(exc: PydanticCustomError, model: type[BaseModel], prefix: str) -> ConfigError:
    """A check made outside validation (``invalid``/``missing``) as the same one line."""
    err = {"type": exc.type, "loc": (), "msg": exc.message(), "ctx": exc.context or {}}
    return _line(err, model, prefix)


def _line(err: dict[str, Any], model: type[BaseModel], prefix: str) -> ConfigError:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    kind = err["type"]
    if "field" in ctx:  # raised by a model-level check on behalf of one field
        loc = (*loc, ctx["field"])
    key = key_path(prefix, loc)
    owner = _owner(model, loc) if loc else model
    field = owner.model_fields.get(str(loc[-1])) if loc else None
    secret = field is not None and _is_secret(field.annotation)
    value = err.get("input")
    shown = "" if secret or kind in ("missing", "cm_missing") else f" = {value!r}"
    hint = (field.description if field is not None else None) or ""
    env = getattr(owner, "env_names", {}).get(str(loc[-1]) if loc else "", None) or env_name(key)

    if kind == "secret_in_file" or ctx.get("mode") == "in_file":
        return ConfigError(
            f"{key}: secrets are not allowed in the config file; set {env} "
            f"or point {key}_file at a file holding it"
        )
    if kind == "secret_file":
        return ConfigError(f"{key} = {ctx.get('value')!r}: {ctx['why']}")
    if kind in ("missing", "cm_missing"):
        if ctx.get("why"):
            hint = ctx["why"]
        if secret:
            why = str(getattr(owner, "secret_hint", ""))
            extra = f" ({why})" if why else ""
            return ConfigError(
                f"{key} is missing: set the environment variable {env} "
                f"or point {key}_file at a file holding it{extra}"
            )
        if kind == "cm_missing" and hint:
            return ConfigError(f"{key} is missing: {hint}")
        return ConfigError(f"{key} is missing" + (f": expected {hint}" if hint else ""))
    if kind == "cm_invalid":
        if "value" in ctx and not secret:
            shown = f" = {ctx['value']!r}"
        elif "field" in ctx:
            shown = ""
        return ConfigError(f"{key}{shown}: {ctx['why']}")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(owner)
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        maybe = f" did you mean {near[0]!r}?" if near else ""
        return ConfigError(f"{key}: unknown key;{maybe} expected one of: {', '.join(allowed)}")
    if kind == "literal_error":
        return ConfigError(f"{key}{shown}: expected {ctx.get('expected')}")
    bounds = {
        "greater_than_equal": ">= {ge}",
        "greater_than": "> {gt}",
        "less_than_equal": "<= {le}",
        "less_than": "< {lt}",
    }
    if kind in bounds:
        limit = bounds[kind].format(**{k: _num(v) for k, v in ctx.items()})
        return ConfigError(f"{key}{shown}: expected {hint or 'a number ' + limit}")
    if kind in ("too_short", "string_too_short"):
        what = "list" if kind == "too_short" else "string"
        return ConfigError(f"{key}{shown}: expected a non-empty {what}")
    if kind == "finite_number":
        return ConfigError(f"{key}{shown}: expected {_TYPE_WORDS[kind]}")
    if kind in _TYPE_WORDS:
        return ConfigError(f"{key}{shown}: expected {hint or _TYPE_WORDS[kind]}")
    msg = str(err["msg"]).removeprefix("Value error, ")
    return ConfigError(f"{key}{shown}: {msg}")


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def read_section(
    model: type[M], data: object, prefix: str, *, base: Path | None = None, **context: Any
) -> M:
    """Validate one table; a ``ConfigError`` naming ``prefix.<key>`` on the first problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict) and not isinstance(data, BaseModel):
        raise ConfigError(f"{prefix} = {data!r}: expected a table ([{prefix}])")
    try:
        return model.model_validate(data, context={"base": base, **context})
    except ValidationError as exc:
        raise config_error(exc, model, prefix) from None


class AccountSection(Section):
    """The keys every ``[[accounts]]`` entry has; a provider's model adds its own."""

    provider: str
    name: str | None = Field(default=None, min_length=1, description="a non-empty account name")
    simulator: bool = False


def required(account: AccountSection, info: ValidationInfo) -> bool:
    """Whether an account's credentials must be present now: not for a simulator account (the
    simulator gives them) and not while the loader only reads the file (``partial``: the provider
    checks them when it starts, and ``check-config`` does both)."""
    return not account.simulator and not (info.context or {}).get("partial")
