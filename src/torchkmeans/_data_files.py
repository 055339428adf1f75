"""Data files of the command line: tables read from .npy, .npz (dense or scipy sparse), .csv,
.tsv, .txt and .pt files, columns selected by name or index, and labels written (atomically)
as .npy or text. Public names are exported by ``torchkmeans.io``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._atomic import atomic_path
from .exceptions import DataError

DATA_FORMATS = (".npy", ".npz", ".csv", ".tsv", ".txt", ".pt")


@dataclass
class Table:
    """Data read from a file: a 2-D array (or tensor) and column names when there were any."""

    X: Any
    columns: list[str] | None


def _fail(source: str, message: str) -> DataError:
    return DataError(f"{source}: {message}")


def _parse_float(cell: str) -> float:
    cell = cell.strip()
    if cell == "":
        raise ValueError("empty cell")
    return float(cell)


def _read_delimited(text: Iterator[str], source: str, delimiter: str, header: bool | None) -> Table:
    import csv

    import numpy as np

    reader = csv.reader(text, delimiter=delimiter)
    rows: list[list[float]] = []
    columns: list[str] | None = None
    width = None
    try:
        numbered = list(enumerate(reader, start=1))
    except csv.Error as exc:
        raise _fail(
            source,
            f"is not readable CSV ({exc}). Save it with ordinary line endings (\\n or \\r\\n).",
        ) from None
    for line_no, cells in numbered:
        if line_no == 1 and cells and cells[0].startswith("\ufeff"):  # a byte-order mark
            cells[0] = cells[0][1:]
        if not cells or all(c.strip() == "" for c in cells):
            continue
        if width is None:
            width = len(cells)
            first_numeric = True
            try:
                [_parse_float(c) for c in cells]
            except ValueError:
                first_numeric = False
            if header or (header is None and not first_numeric):
                columns = [c.strip() for c in cells]
                continue
        if len(cells) != width:
            raise _fail(
                source,
                f"line {line_no} has {len(cells)} cells, expected {width} like the first row.",
            )
        values = []
        for j, cell in enumerate(cells):
            try:
                values.append(_parse_float(cell))
            except ValueError:
                name = f"'{columns[j]}'" if columns else str(j + 1)
                raise _fail(
                    source,
                    f"line {line_no}, column {name}: {cell.strip()!r} is not a number. Fix the "
                    "cell, or pick numeric columns with --columns.",
                ) from None
        rows.append(values)
    if not rows:
        raise _fail(source, "no data rows found.")
    return Table(np.asarray(rows, dtype=np.float64), columns)


def _lines(stream: Any) -> Iterator[str]:
    """The lines of a text stream, any of \\n, \\r\\n or a lone \\r ending a line."""
    for line in iter(stream.readline, ""):
        yield from line.replace("\r\n", "\n").replace("\r", "\n").splitlines(keepends=True)


# The arrays scipy.sparse.save_npz writes for every format (np.savez archives name theirs).
_SPARSE_NPZ_KEYS = {"format", "shape", "data"}


def read_table(path: str, *, key: str | None = None, header: bool | None = None) -> Table:
    """Read a data file: .npy (memory-mapped), .npz (``key``; a sparse matrix written by
    ``scipy.sparse.save_npz`` is read as one), .csv/.tsv/.txt (a header row
    detected, or forced with ``header``), .pt (a tensor, loaded with ``weights_only=True``), or
    ``-`` for CSV on stdin."""
    import sys

    import numpy as np

    if path == "-":
        return _read_delimited(_lines(sys.stdin), "<stdin>", ",", header)
    p = Path(path)
    if not p.exists():
        raise _fail(path, "no such file.")
    if p.is_dir():
        raise _fail(path, "is a folder, expected a data file.")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            return Table(np.load(p, mmap_mode="r", allow_pickle=False), None)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
                if key is None and _SPARSE_NPZ_KEYS <= set(keys):
                    import scipy.sparse

                    return Table(scipy.sparse.load_npz(p), None)  # written by save_npz
                if key is None:
                    if len(keys) != 1:
                        raise _fail(path, f"holds arrays {keys}; pick one with --key.")
                    key = keys[0]
                if key not in keys:
                    raise _fail(path, f"has no array {key!r}; it holds {keys}.")
                return Table(z[key], None)
        if suffix in (".csv", ".tsv", ".txt"):
            delimiter = "\t" if suffix == ".tsv" else ","
            with open(p, newline="", encoding="utf-8-sig") as f:  # (a byte-order mark is no cell)
                return _read_delimited(_lines(f), path, delimiter, header)
        if suffix == ".pt":
            import torch

            obj = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and key is not None:
                obj = obj.get(key)
            if not isinstance(obj, torch.Tensor):
                raise _fail(
                    path,
                    f"holds a {type(obj).__name__}, expected a tensor (use --key for a dict of tensors).",
                )
            return Table(obj, None)
    except DataError:
        raise
    except UnicodeDecodeError:
        raise _fail(path, "is not a UTF-8 text file.") from None
    except Exception as exc:  # numpy / torch / zip errors on unreadable or corrupt files
        raise _fail(path, f"could not be read as {suffix} ({type(exc).__name__}: {exc}).") from None
    raise _fail(
        path,
        f"unknown file type {suffix!r}; expected one of {', '.join(DATA_FORMATS)} or '-' for CSV on stdin.",
    )


def select_columns(table: Table, spec: str | None, source: str) -> Any:
    """Pick columns by comma-separated names (needs a header) or 0-based indices."""
    if spec is None:
        return table.X
    X = table.X.tocsr() if hasattr(table.X, "tocsr") else table.X  # sparse: rows by columns
    picks: list[int] = []
    n = X.shape[1] if getattr(X, "ndim", 0) == 2 else 0
    for item in (s.strip() for s in spec.split(",")):
        if item.lstrip("-").isdigit():
            j = int(item)
        elif table.columns and item in table.columns:
            j = table.columns.index(item)
        else:
            known = (
                f"; columns are {table.columns}" if table.columns else " (the file has no header)"
            )
            raise _fail(source, f"no column {item!r}{known}.")
        if not -n <= j < n:
            raise _fail(source, f"column index {j} out of range for {n} columns.")
        picks.append(j)
    return X[:, picks]


def check_labels_path(path: str) -> str:
    """The suffix of a labels file, one of .npy, .csv and .txt."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".csv", ".txt"):
        raise DataError(f"{path}: unknown labels file type {suffix!r}; use .npy, .csv or .txt.")
    return suffix


def write_labels(labels: Any, path: str | None) -> None:
    """Labels to .npy, .csv or .txt by extension (atomically), or one per line on stdout."""
    import sys

    import numpy as np

    arr = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).astype(np.int64)
    if path is None or path == "-":
        sys.stdout.write("\n".join(str(int(v)) for v in arr) + "\n")
        return
    suffix = check_labels_path(path)
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr)
        else:
            header = "label\n" if suffix == ".csv" else ""
            tmp.write_text(header + "\n".join(str(int(v)) for v in arr) + "\n")
