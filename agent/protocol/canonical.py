"""Canonical JSON: the bytes that are hashed and signed (docs/protocol.md).

The value set is RFC 8785 restricted to what records need: objects with ASCII
keys, arrays, strings of Unicode scalar values, integers with ``|n| < 2**53``,
booleans and null. Floats are outside it on purpose: a ``1.0`` that one
language prints as ``1`` would give two encodings of one value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.protocol.errors import EncodingError

MAX_SAFE_INT = 2**53 - 1
# CLOCK_MONOTONIC in ns passes MAX_SAFE_INT after 104 days of uptime: a record's
# ``mono_ns`` counts from the start of an epoch of this length, and the epoch's number
# joins the boot id (``<boot id>.<n>``), so every writer of records cuts boots alike.
MONO_EPOCH_NS = 2**52


def boot_epoch(boot: str, mono_ns: int) -> tuple[str, int]:
    """The records' ``(boot, mono_ns)`` for a kernel boot id and CLOCK_MONOTONIC reading."""
    epoch, offset = divmod(mono_ns, MONO_EPOCH_NS)
    return (boot if epoch == 0 else f"{boot}.{epoch}"), offset


# Arrays and objects nest at most this deep (a record is depth 1, its data 2).
# Without a bound a deeply nested value would exhaust Python's recursion limit
# inside a verifier, which must never raise; no record needs more than a few.
MAX_DEPTH = 32

__all__ = [
    "MAX_DEPTH",
    "MAX_SAFE_INT",
    "MONO_EPOCH_NS",
    "DuplicateKeys",
    "Invalid",
    "boot_epoch",
    "canonical_bytes",
    "canonical_bytes_checked",
    "check_value",
    "parse_json",
    "parse_json_lenient",
    "value_problem",
]


@dataclass(frozen=True)
class Invalid:
    """A number outside the value set, kept in place by :func:`parse_json_lenient`."""

    detail: str


class DuplicateKeys(dict[str, Any]):
    """An object that repeated a key (the last value kept), kept in place likewise."""

    duplicate: str = ""


def check_value(value: Any, path: str = "$") -> None:
    """Raise :class:`EncodingError` naming the path of the first value outside the set."""
    problem = _problem(value, 0)
    if problem is not None:
        where, detail = problem
        raise EncodingError(f"{path}{where}: {detail}")


def value_problem(value: Any, depth: int = 0) -> tuple[str, str] | None:
    """``(path below value, why)`` of the first value outside the set, or None.

    ``depth`` is how deep ``value`` sits in the document (for the nesting bound).
    """
    return _problem(value, depth)


# The walk below is every verifier's hot path: exact type tests first, paths
# built only on the way out of a failure, and no per-string encode for ASCII.
_Problem = tuple[str, str] | None


def _problem(value: Any, depth: int) -> _Problem:
    kind = type(value)
    if kind is str:
        return None if value.isascii() or _scalar_values(value) else _SURROGATE
    if kind is int:
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return None
        return "", f"integer {_short(value)} is outside |n| < 2^53"
    if kind is dict or kind is list:
        return _container_problem(value, depth)
    if value is None or kind is bool:
        return None
    return _odd_problem(value, depth)


def _container_problem(value: dict[Any, Any] | list[Any], depth: int) -> _Problem:
    if depth >= MAX_DEPTH:
        return "", f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _problem(item, depth + 1)
            if problem is not None:
                return f"[{index}]{problem[0]}", problem[1]
        return None
    for key, item in value.items():
        if not isinstance(key, str):
            return "", f"object key {key!r} is not a string"
        if not key.isascii():
            return "", f"object key {key!r} is not ASCII"
        problem = _problem(item, depth + 1)
        if problem is not None:
            return f".{key}{problem[0]}", problem[1]
    return None


def _odd_problem(value: Any, depth: int) -> _Problem:
    """Markers, floats, subclasses of the JSON types and everything else."""
    if isinstance(value, Invalid):
        return "", value.detail
    if isinstance(value, DuplicateKeys):
        return "", f"duplicate key {value.duplicate!r}"
    if isinstance(value, float):
        return "", f"number {value!r} has a fraction or exponent"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _problem(int(value), depth)
    if isinstance(value, str):
        return _problem(str(value), depth)
    if isinstance(value, dict | list):
        return _container_problem(value, depth)
    return "", f"{type(value).__name__} is not a JSON value"


_SURROGATE = ("", "string holds a lone surrogate")


def _scalar_values(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(number: int) -> str:
    # str() of a huge int is slow (and limited to 4300 digits): say how big instead.
    return str(number) if number.bit_length() < 256 else f"of {number.bit_length()} bits"


# Built once: json.dumps with these options builds a new encoder per call, which
# costs about as much as encoding a whole record.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_bytes(value: Any) -> bytes:
    """The canonical encoding of ``value``; raises :class:`EncodingError` outside the set."""
    check_value(value)
    return _ENCODER.encode(value).encode("utf-8")


def canonical_bytes_checked(value: Any) -> bytes:
    """The canonical encoding of ``value``, which the caller has already checked."""
    return _ENCODER.encode(value).encode("utf-8")


def _no_float(text: str) -> Any:
    raise EncodingError(f"number {text} has a fraction or exponent")


def _bounded_int(text: str) -> int:
    # Reject before int() so a million-digit literal costs nothing.
    digits = text.lstrip("-")
    if len(digits) > 16 or abs(int(text)) > MAX_SAFE_INT:
        raise EncodingError(f"integer {text[:20]} is outside |n| < 2^53")
    return int(text)


def _no_constant(text: str) -> Any:
    raise EncodingError(f"{text} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EncodingError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_json(data: bytes | str) -> Any:
    """Parse JSON strictly: duplicate keys, floats, NaN and big integers are errors.

    Raises :class:`EncodingError` for anything that is not a value of the set,
    including bytes that are not UTF-8 or text that is not JSON.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_float=_no_float,
            parse_int=_bounded_int,
            parse_constant=_no_constant,
        )
    except EncodingError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise EncodingError(f"not JSON: {exc}") from exc
    check_value(value)
    return value


def _lenient_int(text: str) -> int | Invalid:
    digits = text.lstrip("-")
    if len(digits) > 16 or abs(int(text)) > MAX_SAFE_INT:
        return Invalid(f"integer {text[:20]} is outside |n| < 2^53")
    return int(text)


def _lenient_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):  # the common case, without a Python loop
        return result
    marked = DuplicateKeys(result)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked


def _invalid_float(text: str) -> Invalid:
    return Invalid(f"number {text} has a fraction or exponent")


def _invalid_constant(text: str) -> Invalid:
    return Invalid(f"{text} is not a JSON number")


def parse_json_lenient(data: bytes | str) -> Any:
    """Parse any JSON text, keeping values outside the set in place as markers.

    For a batch or a bundle: a ``1.0`` or a repeated key inside one record
    must fail that record (reason ``encoding``, with its ``seq``), not the
    whole file. :func:`check_value` rejects the markers, so every verifier
    reports them. Raises :class:`EncodingError` only for text that is not JSON.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        try:
            # Integers are left to the C parser (a hook per integer costs a third
            # of the parse): check_value refuses those beyond 2^53 afterwards.
            return json.loads(
                text,
                object_pairs_hook=_lenient_pairs,
                parse_float=_invalid_float,
                parse_constant=_invalid_constant,
            )
        except json.JSONDecodeError:
            raise
        except ValueError:
            # An integer over Python's digit limit: parse again, bounding each
            # integer, so that it fails its record only.
            return json.loads(
                text,
                object_pairs_hook=_lenient_pairs,
                parse_float=_invalid_float,
                parse_int=_lenient_int,
                parse_constant=_invalid_constant,
            )
    except (ValueError, TypeError, RecursionError) as exc:
        raise EncodingError(f"not JSON: {exc}") from exc
