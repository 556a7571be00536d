"""Finding, downloading and reading the CSV files behind the real datasets (no pandas)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import tempfile
import urllib.request
from http.client import HTTPException
from pathlib import Path

import numpy as np

from .dataset import DataError

# Cell spellings read as missing; "?" is how several UCI files write it.
MISSING = frozenset({"", "na", "n/a", "nan", "null", "?"})
TIMEOUT_S = 60


def search_dirs(data_dir: str | Path | None) -> list[Path]:
    """Where dataset files are looked for, in order: ``data_dir``, ``$HTAF_DATA``, ``./data``."""
    out: list[Path] = []
    for d in (data_dir, os.environ.get("HTAF_DATA") or None, "data"):
        if d is not None and Path(d).expanduser() not in out:
            out.append(Path(d).expanduser())
    return out


def find_file(
    dataset: str,
    filenames: tuple[str, ...],
    data_dir: str | Path | None,
    download: bool,
    url: str | None = None,
    note: str = "",
) -> Path:
    """Path of the first of ``filenames`` found; downloads ``url`` into the first dir if asked."""
    dirs = search_dirs(data_dir)
    for d in dirs:
        for name in filenames:
            if (d / name).is_file():
                return d / name
    if download and url:
        name = url.rsplit("/", 1)[-1]
        dest = dirs[0] / (name if name in filenames else filenames[0])
        fetch(url, dest)
        return dest
    alt = f" (or {', '.join(map(repr, filenames[1:]))})" if len(filenames) > 1 else ""
    msg = (
        f"dataset {dataset!r}: file {filenames[0]!r}{alt} not found; searched "
        f"{', '.join(str(d.resolve()) for d in dirs)} (set data_dir= or $HTAF_DATA)."
    )
    if url:
        msg += (
            f" Official source: {url} . download=True (CLI --download) fetches it when the "
            "network allows."
        )
    raise DataError(msg + (f" {note}" if note else ""))


def fetch(
    url: str, dest: Path, timeout: float = TIMEOUT_S, digests: dict[str, str] | None = None
) -> None:
    """Download ``url`` to ``dest`` atomically: a temp file in the same folder, then os.replace.

    ``digests`` (``{"sha256": hex, "md5": hex}``, any subset) are checked on the downloaded bytes
    before the rename: a mismatch is a DataError and nothing is written. Folders created for
    ``dest`` are removed again when the download fails.
    """
    made = _missing_parents(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    hashes = {algo: hashlib.new(algo) for algo in (digests or {})}
    ok = False
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            while chunk := r.read(1 << 20):
                f.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
        if os.path.getsize(tmp) == 0:
            raise DataError(f"download of {url} returned an empty file")
        for algo, h in hashes.items():
            want = (digests or {})[algo].lower()
            if h.hexdigest() != want:
                raise DataError(
                    f"download of {url}: {algo} {h.hexdigest()} differs from the official {want}; "
                    f"nothing was written to {dest}. Try again later, or download the file by "
                    f"hand, check it and place it at {dest}"
                )
        os.replace(tmp, dest)
        ok = True
    except DataError:
        raise
    # URLError and timeouts are OSErrors; a connection cut mid-body is an HTTPException
    except (OSError, HTTPException, ValueError) as e:
        raise DataError(
            f"could not download {url} to {dest}: {e}. Check the network, or download the file "
            f"by hand and place it at {dest}"
        ) from e
    finally:  # never leave a partial file (or a folder made only for it) behind
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not ok:
            for d in made:
                with contextlib.suppress(OSError):  # not empty: someone else wrote there
                    d.rmdir()


def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    out = []
    for d in path.parents:
        if d.exists():
            break
        out.append(d)
    return out


def _sniff(text: str) -> str:
    first = next(line for line in text.splitlines() if line.strip())
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] > counts[","] else ","


def read_csv(
    path: str | Path, *, delimiter: str | None = None, names: list[str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Read a CSV into (header, columns of raw strings).

    ``delimiter=None`` sniffs ``,`` / ``;`` / tab from the first line. ``names`` is the header
    of a header-less file (e.g. abalone.data). Empty lines are skipped; a row with the wrong
    number of fields is an error naming its line.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read file ({e})") from e
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter or _sniff(text), strict=True)
    header = list(names) if names else None
    rows: list[list[str]] = []
    try:
        for row in reader:
            if not row:
                continue
            if header is None:
                header = [c.strip() for c in row]
            elif len(row) != len(header):
                raise DataError(
                    f"{path}: malformed CSV, line {reader.line_num} has {len(row)} fields, "
                    f"expected {len(header)}"
                )
            else:
                rows.append(row)
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV near line {reader.line_num}: {e}") from e
    assert header is not None
    bad = [i + 1 for i, h in enumerate(header) if not h or header.index(h) != i]
    if bad:
        raise DataError(f"{path}: empty or duplicate column name at position(s) {bad}")
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return header, [list(c) for c in zip(*rows, strict=True)]


def parse_column(cells: list[str]) -> np.ndarray:
    """float64 array (NaN = missing) if every present cell is a number, else object array of
    stripped strings (None = missing). "inf" parses as a number and is rejected later."""
    vals: list[str | None] = [None if c.strip().lower() in MISSING else c.strip() for c in cells]
    try:
        return np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)
    except ValueError:
        return np.array(vals, dtype=object)


def is_number(s: object) -> bool:
    try:
        float(s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def require_columns(path: Path, header: list[str], expected: list[str] | tuple[str, ...]) -> None:
    """An official file must carry its official columns (catches a wrong or edited file)."""
    missing = [c for c in expected if c not in header]
    if missing:
        raise DataError(f"{path}: not in the official format, missing column(s) {missing}")
