"""Reading and validating the table files the service loads (formats in docs/DESIGN.md).

Tables are parsed into a compact CSR layout (one flat int64 array plus row offsets) so that a
50,000 x 100 table costs 40 MB instead of millions of Python ints. Both stores start from
this parsed form. A file that is missing, truncated or of the wrong shape raises TableError
with the file name, the line and what to do; nothing is half-loaded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson

from contract.tables import TableError, json_lines

# Ids are Spark longs in the logs; the same bound is applied to HTTP input (validation.py).
MAX_ID = 2**63 - 1

# kind -> (key field, list field) of a keyed JSONL table
KEYED_KINDS = {"tracks": ("track", "recommendations"), "users": ("user", "tracks")}


@dataclass(frozen=True)
class KeyedRows:
    """A parsed keyed table: row i has key keys[i] and values flat[offsets[i]:offsets[i+1]]."""
    path: Path
    kind: str
    keys: np.ndarray     # int64, unique
    offsets: np.ndarray  # int64, len(keys) + 1
    flat: np.ndarray     # int64

    @cached_property
    def digest(self) -> str:
        """A content hash: the table's identity in Redis, shared by replicas."""
        return _digest(self.kind, self.keys, self.offsets, self.flat)


@dataclass(frozen=True)
class TrackList:
    """A parsed top-pop list: track ids, most popular first."""
    path: Path
    tracks: np.ndarray   # int64

    @cached_property
    def digest(self) -> str:
        return _digest("toppop", self.tracks)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TableError(f"{path}: table file not found; check the path in the experiments "
                         f"config (relative paths are relative to the repo root)") from None
    except OSError as e:
        raise TableError(f"{path}: cannot read table file: {e.strerror}") from None


def _digest(kind: str, *arrays: np.ndarray) -> str:
    digest = hashlib.blake2b(kind.encode(), digest_size=10)
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()


def _check_ids(path: Path, values: list, what: str) -> np.ndarray:
    """values -> int64 array, refusing non-ints (booleans included) and negatives."""
    kinds = set(map(type, values))
    if kinds - {int}:
        bad = next(v for v in values if type(v) is not int)
        raise TableError(f"{path}: {what} must be integers, found {bad!r}")
    try:
        array = np.array(values, dtype=np.int64)
    except OverflowError:
        raise TableError(f"{path}: {what} must fit in 64 bits") from None
    if array.size and array.min() < 0:
        raise TableError(f"{path}: {what} must be non-negative, found {int(array.min())}")
    return array


def _check_catalog(path: Path, array: np.ndarray, what: str, catalog_ids: np.ndarray) -> None:
    unknown = ~_known(array, catalog_ids)
    if unknown.any():
        raise TableError(f"{path}: {what}: track {int(array[unknown][0])} is not in the catalog "
                         f"({int(unknown.sum())} unknown ids); was the table built for another world?")


def _known(array: np.ndarray, catalog_ids: np.ndarray) -> np.ndarray:
    """Which ids of `array` are in the sorted `catalog_ids` (a lookup mask when ids are dense)."""
    top = int(catalog_ids[-1])
    if top > 4 * len(catalog_ids) + 1_000_000:
        return np.isin(array, catalog_ids)
    mask = np.zeros(top + 2, dtype=bool)
    mask[catalog_ids] = True
    return mask[np.minimum(array, top + 1)]


def read_keyed(path: Path, kind: str, catalog_ids: np.ndarray | None = None) -> KeyedRows:
    """Parse a track-keyed ("tracks") or user-keyed ("users") JSONL table."""
    data = _read(path)
    parsed = _parse_plain(data, kind) or _parse_exact(path, data, kind)
    key_field, list_field = KEYED_KINDS[kind]
    keys, offsets, flat = parsed
    if not len(keys):
        raise TableError(f"{path}: table is empty")
    if catalog_ids is not None and kind == "tracks":
        _check_catalog(path, keys, f"{key_field!r} keys", catalog_ids)
    if catalog_ids is not None:
        _check_catalog(path, flat, f"{list_field!r} values", catalog_ids)
    if np.unique(keys).size != keys.size:
        raise TableError(f"{path}: duplicate {key_field!r} keys")
    return KeyedRows(path, kind, keys, offsets, flat)


# Every byte but the ASCII digits becomes a space: what numpy's text parser needs.
_ONLY_DIGITS = bytes(b if 48 <= b <= 57 else 32 for b in range(256))
_MAX_DIGITS = 18  # longer numbers may not fit in int64: left to the exact parser


def _parse_plain(data: bytes, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The fast path, for the plain layout the jobs write: every line exactly
    {"<key>": <int>, "<list>": [<int>, ...]} (any spaces). Numbers are read by numpy in one
    pass, without a Python int per value (the tables are millions of numbers).
    Each line's skeleton (the line without digits and spaces) must be exactly what its count
    of numbers implies, so anything else (other keys or order, floats, negatives, booleans,
    leading zeros, a truncated line) returns None and the exact parser explains the problem."""
    key_field, list_field = KEYED_KINDS[kind]
    raw = np.frombuffer(data, dtype=np.uint8)
    # +1 where a run of digits starts, -1 just after it ends (few passes over a large file)
    is_digit = (raw - np.uint8(48)) < 10  # uint8 wraps below "0": one comparison
    edges = np.diff(is_digit.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    lengths = np.flatnonzero(edges == -1) - starts
    if lengths.size and (lengths.max() > _MAX_DIGITS or ((raw[starts] == 48) & (lengths > 1)).any()):
        return None
    newlines = np.flatnonzero(raw == 10)
    line_of_start = np.searchsorted(newlines, starts)  # newlines before each number
    numbers_per_line = np.bincount(line_of_start, minlength=newlines.size + 1).tolist()
    head = f'{{"{key_field}":,"{list_field}":['.encode()
    skeletons = data.translate(None, b"0123456789 \t\r").split(b"\n")
    sizes = []
    for skeleton, numbers in zip(skeletons, numbers_per_line):
        if not skeleton and not numbers:
            continue  # blank line
        if numbers < 1 or skeleton != head + b"," * (numbers - 2) + b"]}":
            return None
        sizes.append(numbers - 1)
    if not sizes:
        return None
    values = np.fromstring(data.translate(_ONLY_DIGITS), dtype=np.int64, sep=" ")
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(np.array(sizes, dtype=np.int64) + 1, out=offsets[1:])
    if values.size != offsets[-1]:
        return None
    is_key = np.zeros(values.size, dtype=bool)
    is_key[offsets[:-1]] = True
    return values[is_key], offsets - np.arange(len(sizes) + 1), values[~is_key]


def _parse_exact(path: Path, data: bytes, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse line by line with a JSON parser, raising TableError at the first problem."""
    key_field, list_field = KEYED_KINDS[kind]
    keys: list = []
    lengths: list[int] = []
    flat: list = []
    expected = {key_field, list_field}
    for number, _, record in json_lines(path, data):
        if not isinstance(record, dict) or record.keys() != expected:
            found = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise TableError(f"{path}:{number}: expected an object with keys {sorted(expected)}, "
                             f"found {found}; is this a {kind}-keyed table?")
        values = record[list_field]
        if not isinstance(values, list):
            raise TableError(f"{path}:{number}: {list_field!r} must be a list")
        keys.append(record[key_field])
        lengths.append(len(values))
        flat.extend(values)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return (_check_ids(path, keys, f"{key_field!r} keys"), offsets,
            _check_ids(path, flat, f"{list_field!r} values"))


def read_list(path: Path, catalog_ids: np.ndarray | None = None) -> TrackList:
    """Parse a top-pop table: a JSON list of track ids."""
    data = _read(path)
    try:
        values = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise TableError(f"{path}: invalid JSON (truncated file?): {e}") from None
    if not isinstance(values, list) or not values:
        raise TableError(f"{path}: a top-pop table must be a non-empty JSON list of track ids")
    tracks = _check_ids(path, values, "track ids")
    if catalog_ids is not None:
        _check_catalog(path, tracks, "track ids", catalog_ids)
    return TrackList(path, tracks)
