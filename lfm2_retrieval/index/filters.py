"""Metadata filters, evaluated with pyarrow before any scoring.

A filter is a JSON object; every key must match (AND):
    {"lang": "en"}                          equality
    {"year": {"$gte": 2019, "$lt": 2024}}   ranges: $gt $gte $lt $lte
    {"source": {"$in": ["a.md", "b.md"]}}   membership ($nin for the opposite)
    {"lang": {"$ne": "fr"}}                 inequality
    {"source": {"$prefix": "/docs/ja/"}}    text starting with a prefix
    {"source": {"$glob": "*/guide/*.md"}}   text matching a shell pattern (`*` also crosses `/`; `?`, `[ab]`)
    {"$or": [{...}, {...}]}                 any of several filters
    {"$and": [{...}, {...}]}                all of several filters (two conditions on one key)
A key absent from a chunk's metadata never matches (except under $ne / $nin). A range ($gt,
$gte, $lt, $lte) of text against a numeric field, or of a number against a text field, is a
FilterError, not an empty answer: {"year": {"$gte": "abc"}} is a mistake to report.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FilterError

Filter = dict[str, Any]
_COMPARISONS = {"$eq": pc.equal, "$ne": pc.not_equal, "$gt": pc.greater, "$gte": pc.greater_equal,
                "$lt": pc.less, "$lte": pc.less_equal}
_TEXT_MATCHES = ("$prefix", "$glob")
_LOGICAL = ("$or", "$and")
OPERATORS = sorted([*_COMPARISONS, "$in", "$nin", *_TEXT_MATCHES, *_LOGICAL])
_RANGES = ("$gt", "$gte", "$lt", "$lte")


# Bounds on a filter's work: each clause is evaluated over every segment's metadata, so a
# filter of 80k clauses held a worker for 19 s. Larger sets of values go in one $in list.
MAX_FILTER_CLAUSES = 512
MAX_FILTER_DEPTH = 8


class CheckedFilter(dict):
    """A filter that `validate` has passed: every layer below (a sharded index's shards, each
    segment's evaluation) takes it as it is, so a filter is checked once per request."""


def validate(filter_: Filter) -> CheckedFilter:
    """`filter_`, checked: FilterError with a precise message if it is malformed or too large."""
    if isinstance(filter_, CheckedFilter):
        return filter_
    clauses = _validate(filter_, 1)
    if clauses > MAX_FILTER_CLAUSES:
        raise FilterError(f"a filter may hold at most {MAX_FILTER_CLAUSES} conditions, this one {clauses}; "
                          "match many values of one field with {\"field\": {\"$in\": [...]}}")
    return CheckedFilter(filter_)


def _validate(filter_: Filter, depth: int) -> int:
    """Checks `filter_` (at nesting `depth` of $or and $and); returns its number of conditions."""
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"a filter may nest $or and $and at most {MAX_FILTER_DEPTH} levels deep")
    if not isinstance(filter_, dict):
        raise FilterError(f"a filter must be a JSON object, not {type(filter_).__name__}")
    clauses = 0
    for key, condition in filter_.items():
        if key in _LOGICAL:
            if not isinstance(condition, list) or not condition:
                raise FilterError(f"{key} takes a non-empty list of filters")
            for sub in condition:
                clauses += _validate(sub, depth + 1)
                if clauses > MAX_FILTER_CLAUSES:
                    return clauses  # stop early: validate says why
            continue
        clauses += len(condition) if isinstance(condition, dict) else 1
        if key.startswith("$"):
            raise FilterError(f"unknown top-level operator {key!r}; only $or and $and may appear there")
        if isinstance(condition, dict):
            if not condition:
                raise FilterError(f"empty condition for {key!r}")
            for op, value in condition.items():
                _check_integers(key, value)
                if op not in _COMPARISONS and op not in ("$in", "$nin", *_TEXT_MATCHES):
                    raise FilterError(f"unknown operator {op!r} for {key!r}; use one of {OPERATORS}")
                if op in _TEXT_MATCHES and not isinstance(value, str):
                    raise FilterError(f"{op} for {key!r} takes a string")
                if op in ("$in", "$nin") and not isinstance(value, list):
                    raise FilterError(f"{op} for {key!r} takes a list")
                if op in ("$gt", "$gte", "$lt", "$lte") and not isinstance(value, (int, float, str)):
                    raise FilterError(f"{op} for {key!r} takes a number or a string")
        else:
            _check_integers(key, condition)
    return clauses


INT64 = (-(2**63), 2**63 - 1)


def _check_integers(key: str, value) -> None:
    """Metadata columns hold 64-bit integers: a larger one in a filter is a clear error, not an
    overflow deep inside the comparison."""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, int) and not isinstance(v, bool) and not INT64[0] <= v <= INT64[1]:
            raise FilterError(f"the integer for {key!r} does not fit in 64 bits; metadata integers range from "
                              f"{INT64[0]} to {INT64[1]}")


def evaluate(filter_: Filter, table: pa.Table) -> np.ndarray:
    """Boolean mask over the rows of a metadata table."""
    return _evaluate(validate(filter_), table)


def _evaluate(filter_: Filter, table: pa.Table) -> np.ndarray:
    n = table.num_rows
    mask = np.ones(n, dtype=bool)
    for key, condition in filter_.items():
        if key == "$or":
            any_mask = np.zeros(n, dtype=bool)
            for sub in condition:
                any_mask |= _evaluate(sub, table)
            mask &= any_mask
            continue
        if key == "$and":
            for sub in condition:
                mask &= _evaluate(sub, table)
            continue
        ops = condition if isinstance(condition, dict) else {"$eq": condition}
        column = table.column(key) if key in table.column_names else None
        for op, value in ops.items():
            if op in _RANGES and column is not None:
                _check_range(key, column.type, value)
            mask &= _apply(column, op, value, n)
    return mask


def _check_range(key: str, column_type: pa.DataType, value: Any) -> None:
    """A range compares like with like: text with a text field, a number with a numeric one."""
    if pa.types.is_dictionary(column_type):
        column_type = column_type.value_type
    numeric = pa.types.is_integer(column_type) or pa.types.is_floating(column_type)
    text = pa.types.is_string(column_type) or pa.types.is_large_string(column_type)
    if numeric and isinstance(value, str):
        raise FilterError(f"{key!r} holds numbers: a range on it takes a number, not {value!r}")
    if text and not isinstance(value, str):
        raise FilterError(f"{key!r} holds text: a range on it takes a string, not {value!r}")


def _apply(column: pa.Array | pa.ChunkedArray | None, op: str, value: Any, n: int) -> np.ndarray:
    negative = op in ("$ne", "$nin")
    if column is None:
        return np.full(n, negative)
    if pa.types.is_dictionary(column.type):
        return _apply_dictionary(column, op, value, n)
    try:
        if op in _TEXT_MATCHES:
            if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
                return np.zeros(n, dtype=bool)
            result = (pc.starts_with(column, pattern=value) if op == "$prefix" else
                      pc.match_substring_regex(column, pattern=_glob_regex(value)))
        elif op in ("$in", "$nin"):
            result = pc.is_in(column, value_set=pa.array(value, type=column.type))
            result = pc.invert(result) if op == "$nin" else result
        else:
            result = _COMPARISONS[op](column, pa.scalar(value, type=column.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # The value cannot compare with this column's type (e.g. a string against years).
        return np.full(n, negative)
    # Missing values never match a positive condition and always match a negative one.
    return pc.fill_null(result, negative).to_numpy(zero_copy_only=False)


def _apply_dictionary(column: pa.ChunkedArray | pa.DictionaryArray, op: str, value: Any, n: int) -> np.ndarray:
    """A condition on a dictionary column (metadata a document shares with its chunks): decided
    once per distinct value, then looked up per chunk."""
    negative = op in ("$ne", "$nin")
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array.dictionary) == 0:
        return np.full(n, negative)
    per_value = _apply(array.dictionary, op, value, len(array.dictionary))
    indices = array.indices.fill_null(0).to_numpy(zero_copy_only=False)
    out = per_value[indices]
    if array.indices.null_count:
        out[array.indices.is_null().to_numpy(zero_copy_only=False)] = negative
    return out


def _glob_regex(pattern: str) -> str:
    """A shell pattern as an anchored RE2 expression (Arrow's regex engine): `*` any run of
    characters, `?` one, `[...]` a set; everything else literal."""
    out, i = ["^"], 0
    while i < len(pattern):
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (end := pattern.find("]", i + 1 if pattern[i:i + 1] in ("!", "]") else i)) > 0:
            body = pattern[i:end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
    return "(?s)" + "".join(out) + "$"
