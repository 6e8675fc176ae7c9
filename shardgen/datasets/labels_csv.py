"""The ``folder`` dataset's options as they are written: the labels CSV, ``--sensor``, ``--window-us``.

Every function returns checked values or raises :class:`~shardgen.datasets.base.DatasetError` naming the
file and row; the rules are in :mod:`shardgen.datasets.folder`'s docstring.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from shardgen.datasets.base import DatasetError

CSV_COLUMNS = ("file", "label", "start_us", "end_us", "split")
SPLIT_RE = re.compile(r"^[a-z0-9_\-]+$")
INT_RE = re.compile(r"^[+-]?[0-9]+$")
UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class LabelRow:
    """One row of a labels CSV: ``file`` relative to RAW (POSIX), ``label`` as written, optional window."""

    file: str
    label: str
    start: int | None
    end: int | None
    split: str | None
    row: int


def parse_sensor(value: Any) -> tuple[int, int]:
    """``(H, W)`` from a pair of ints or an ``"HxW"`` string; :class:`DatasetError` otherwise."""
    try:
        if isinstance(value, str):
            h, w = (int(v) for v in value.lower().split("x"))
        else:
            h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise DatasetError(f"--sensor {value!r}: expected HxW such as 480x640") from None
    if h <= 0 or w <= 0:
        raise DatasetError(f"--sensor {h}x{w}: height and width must be positive")
    return h, w


def window_option(window_us: Any, stride_us: Any) -> tuple[int, int] | None:
    if window_us is None:
        if stride_us is not None:
            raise DatasetError("--stride-us needs --window-us")
        return None
    w = int(window_us)
    s = w if stride_us is None else int(stride_us)
    if w <= 0 or s <= 0:
        raise DatasetError(f"--window-us {w} / --stride-us {s}: must be positive (µs)")
    return w, s


def _int_cell(text: str, column: str, name: str, row: int) -> int:
    if not INT_RE.match(text):
        raise DatasetError(f"{name}: row {row}: {column} {text!r} is not an integer (µs)")
    if len(text.lstrip("+-")) > 19 or not -(2**63) <= int(text) < 2**63:  # int() refuses > 4300 digits
        raise DatasetError(f"{name}: row {row}: {column} {text[:40]!r} does not fit a 64-bit integer (µs)")
    return int(text)


def parse_labels_csv(data: bytes, name: str) -> list[LabelRow]:
    """Parse a labels CSV (see the module docstring); every error names ``name`` and the row (line).

    Parameters
    ----------
    data : bytes
        The file's bytes (UTF-8, optionally with a BOM).
    name : str
        How errors name the file.

    Returns
    -------
    list of LabelRow
        In file order.

    Raises
    ------
    DatasetError
        Unknown or missing columns, a wrong number of cells, text in a time column, ``end_us <= start_us``,
        only one of the two times, an empty file name or label, a path leaving RAW, a bad split name, no rows.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name}: not UTF-8 text ({exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: dict[str, int] | None = None
    rows: list[LabelRow] = []
    try:
        for raw_cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in raw_cells]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if columns is None:
                lowered = [c.lower() for c in cells]
                if any(c in CSV_COLUMNS for c in lowered):
                    columns = _header(lowered, name, line)
                    continue
                if len(cells) not in (2, 4):
                    raise DatasetError(
                        f"{name}: row {line}: expected 'file,label[,start_us,end_us]' (or a header row naming the "
                        f"columns), got {len(cells)} columns"
                    )
                columns = dict(zip(CSV_COLUMNS, range(len(cells)), strict=False))
            rows.append(_row(cells, columns, name, line))
    except csv.Error as exc:
        raise DatasetError(f"{name}: row {reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise DatasetError(f"{name}: no rows (expected 'file,label[,start_us,end_us]')")
    return rows


def _header(lowered: list[str], name: str, line: int) -> dict[str, int]:
    unknown = [c for c in lowered if c not in CSV_COLUMNS]
    if unknown:
        raise DatasetError(f"{name}: row {line}: unknown column {unknown[0]!r}; known: {', '.join(CSV_COLUMNS)}")
    if len(set(lowered)) != len(lowered):
        raise DatasetError(f"{name}: row {line}: a column is named twice")
    for need in ("file", "label"):
        if need not in lowered:
            raise DatasetError(f"{name}: row {line}: no {need!r} column")
    if ("start_us" in lowered) != ("end_us" in lowered):
        raise DatasetError(f"{name}: row {line}: 'start_us' and 'end_us' go together")
    return {c: i for i, c in enumerate(lowered)}


def _row(cells: list[str], columns: dict[str, int], name: str, line: int) -> LabelRow:
    if len(cells) != len(columns):
        raise DatasetError(f"{name}: row {line}: expected {len(columns)} columns ({', '.join(columns)}), "
                           f"got {len(cells)}")
    file = cells[columns["file"]].replace("\\", "/")
    parts = PurePosixPath(file).parts
    if not file:
        raise DatasetError(f"{name}: row {line}: empty file name")
    if not parts or file.startswith("/") or ".." in parts or ":" in parts[0]:  # "." has no parts
        raise DatasetError(f"{name}: row {line}: file {file!r} must be a path relative to RAW (no '..')")
    label = cells[columns["label"]]
    if not label:
        raise DatasetError(f"{name}: row {line}: empty label")
    start = end = None
    if "start_us" in columns:
        s_text, e_text = cells[columns["start_us"]], cells[columns["end_us"]]
        if bool(s_text) != bool(e_text):
            raise DatasetError(f"{name}: row {line}: give both start_us and end_us, or neither")
        if s_text:
            start = _int_cell(s_text, "start_us", name, line)
            end = _int_cell(e_text, "end_us", name, line)
            if end <= start:
                raise DatasetError(f"{name}: row {line}: end_us {end} must be greater than start_us {start}")
    split = None
    if "split" in columns:
        split = cells[columns["split"]].lower()
        if not SPLIT_RE.match(split):
            raise DatasetError(f"{name}: row {line}: split {cells[columns['split']]!r}: expected a name of "
                               "a-z, 0-9, '_', '-' (train, test, val …)")
    return LabelRow(str(PurePosixPath(*parts)), label, start, end, split, line)


def key_part(text: str) -> str:
    """``text`` made safe for one sample-key component: ``[A-Za-z0-9_.-]``, no leading ``.``."""
    safe = UNSAFE_RE.sub("_", text)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    return safe or "_"


def stem_of(file: str) -> str:
    """Key stem of a relative path: each component made safe, the extension dropped."""
    path = PurePosixPath(file)
    return "/".join(key_part(p) for p in (*path.parent.parts, path.stem))
