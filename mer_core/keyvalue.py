"""KEY=VALUE parsing shared by the CLI and the dashboard (ground floor).

One parser for ``--set``, ``--dataset-option``, ``--model-option`` and the
New experiment form's option boxes. With a target dataclass, a value is typed
from the field's type hint (int, float, bool, str, tuples/lists, Optional,
Literal choices, mappings as JSON objects, nested dataclasses through dotted
keys such as ``preprocess.flow_method``); an unknown key names the valid ones
and a value of the wrong type names the key and the expected type::

    dropout='abc': expected a number

Without a target (indexer keyword options, which have no dataclass) values
are typed JSON-ish by :func:`parse_value`: ``4`` is an int, ``true`` a bool,
``[1, 2]`` a list, anything that is not JSON stays text.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Iterable, Literal, Mapping, Union

from mer_core.errors import ConfigError

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_value(text: str) -> Any:
    """A JSON value where the text parses as one (``true``/``false`` in any case), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        return text


def split_pair(item: str, what: str = "option") -> tuple[str, str]:
    """``'key=value'`` -> ``('key', 'value')`` (both stripped); raises ConfigError without ``=`` or key."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {item!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def parse_pairs(items: Iterable[str], target: type | None = None, what: str = "option") -> dict[str, Any]:
    """``KEY=VALUE`` items -> dict, typed from ``target``'s fields (JSON-ish without a target).

    Dotted keys into a nested dataclass field (``preprocess.flow_method=tvl1``)
    come back nested: ``{'preprocess': {'flow_method': 'tvl1'}}``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, text = split_pair(item, what)
        if target is None:
            out[key] = parse_value(text)
            continue
        head, _, rest = key.partition(".")
        hint = field_types(target).get(head)
        if hint is None:
            raise _unknown(key, target, what)
        if rest:
            nested = _dataclass_of(hint)
            if nested is None:
                raise ConfigError(f"{what} {key}: {head} has no sub-keys")
            sub = parse_pairs([f"{rest}={text}"], nested, f"{what} {head}.".rstrip())
            existing = out.get(head)
            out[head] = {**(existing if isinstance(existing, dict) else {}), **sub}
        else:
            out[key] = typed_value(key, text, hint, what)
    return out


def parse_lines(text: str, target: type | None = None, what: str = "options") -> dict[str, Any]:
    """One ``KEY=VALUE`` per line (blank lines and ``#`` comments skipped); errors name the line."""
    out: dict[str, Any] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.update(_merge_nested(out, parse_pairs([line], target, f"{what} line {i}")))
    return out


def field_types(target: type) -> dict[str, Any]:
    """Field name -> resolved type hint of a dataclass."""
    if not dataclasses.is_dataclass(target):
        raise TypeError(f"{target!r} is not a dataclass")
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: fall back to JSON-ish values
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(target)}


def typed_value(key: str, text: str, hint: Any, what: str = "") -> Any:
    """Convert ``text`` to ``hint``'s type; ConfigError ``[what ]key='text': expected ...`` otherwise."""
    label = f"{what} {key}".strip() if what else key
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return parse_value(text)
    if origin is Union or isinstance(hint, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if type(None) in args and text.strip().lower() in ("", "none", "null"):
            return None
        if len(options) == 1:
            return typed_value(key, text, options[0], what)
        return parse_value(text)
    if origin is Literal:
        value = text if all(isinstance(a, str) for a in args) else parse_value(text)
        if value not in args:
            raise ConfigError(f"{label}={text!r}: expected one of {', '.join(map(str, args))}")
        return value
    if hint is bool:
        low = text.strip().lower()
        if low not in _TRUE + _FALSE:
            raise ConfigError(f"{label}={text!r}: expected true or false")
        return low in _TRUE
    if hint is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(f"{label}={text!r}: expected an integer") from None
    if hint is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ConfigError(f"{label}={text!r}: expected a number") from None
    if hint is str:
        return text
    if origin in (tuple, list) or hint in (tuple, list):
        return _sequence(key, text, hint, label)
    if origin in (dict, Mapping, typing.Mapping) or hint is dict or _dataclass_of(hint) is not None:
        value = parse_value(text)
        if not isinstance(value, dict):
            raise ConfigError(f"{label}={text!r}: expected a JSON object such as {{\"key\": 1}}")
        return value
    return parse_value(text)


def _sequence(key: str, text: str, hint: Any, label: str) -> Any:
    """``a,b,c`` or a JSON list -> tuple (list for list fields), each item typed."""
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    stripped = text.strip()
    if stripped.startswith("["):
        value = parse_value(stripped)
        if not isinstance(value, list):
            raise ConfigError(f"{label}={text!r}: expected a list, e.g. a,b,c or [\"a\", \"b\"]")
        parts = [v if isinstance(v, str) else json.dumps(v) for v in value]
    else:
        parts = [p.strip() for p in stripped.strip("()").split(",") if p.strip()]
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(args) != len(parts):
            raise ConfigError(f"{label}={text!r}: expected {len(args)} comma-separated values")
        item_hints = list(args)
    else:
        item_hints = [args[0] if args else Any] * len(parts)
    try:
        items = [typed_value(key, p, h) for p, h in zip(parts, item_hints)]
    except ConfigError as exc:
        raise ConfigError(f"{label}={text!r}: {str(exc).split(': ', 1)[-1]} for each item") from None
    return items if origin is list else tuple(items)


def _dataclass_of(hint: Any) -> type | None:
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _merge_nested(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(new)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(old.get(k), dict):
            out[k] = {**old[k], **v}
    return out


def _unknown(key: str, target: type, what: str) -> ConfigError:
    valid = ", ".join(sorted(f.name for f in dataclasses.fields(target)))
    noun = "option" if "option" in what else "key"
    return ConfigError(f"{what} {key}: unknown {noun}; valid {noun}s: {valid}")
