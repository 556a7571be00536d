"""Official dataset files: where they live, their published checksums, download and unpacking.

An ``Official`` names one file as its publisher distributes it (an archive or a data file),
the URLs it can be fetched from, and the checksums published for it. Loaders look for it with
``locate``; ``download`` fetches it (checksum checked before the file appears); ``verify_file``
checks a local copy; ``extract`` unpacks an archive safely; ``tar_members`` reads named members
of a tar archive without unpacking anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .dataset import DataError
from .files import fetch, search_dirs

CHUNK = 1 << 20
# tarfile's own member checks, where this Python has them (3.12, and 3.10.12+/3.11.4+)
TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


@dataclass(frozen=True)
class Official:
    """One file as its publisher distributes it.

    ``name`` is its path relative to a data folder (where a download puts it); ``also`` lists
    other accepted relative paths (e.g. torchvision's layout). ``urls`` are tried in order;
    none means the file cannot be downloaded. ``md5``/``sha256`` are the published checksums
    (hex) and ``checksum_source`` says where they were published.
    """

    name: str
    urls: tuple[str, ...] = ()
    md5: str | None = None
    sha256: str | None = None
    checksum_source: str = ""
    also: tuple[str, ...] = ()

    @property
    def digests(self) -> dict[str, str]:
        """``{"sha256": hex, "md5": hex}`` for the checksums that are known."""
        return {k: v for k, v in (("sha256", self.sha256), ("md5", self.md5)) if v}

    def find(self, dirs: Iterable[Path]) -> Path | None:
        """The first existing copy in ``dirs`` (under ``name`` or one of ``also``)."""
        for d in dirs:
            for rel in (self.name, *self.also):
                if (d / rel).is_file():
                    return d / rel
        return None


def where_to_put(dataset: str, off: Official, dirs: list[Path]) -> str:
    """The sentence every missing/bad-file error ends with: where the file goes, how to get it."""
    places = ", ".join(str(d.resolve()) for d in dirs)
    msg = f"Place the official file {off.name!r} in one of: {places} (data_dir= or $HTAF_DATA)"
    if off.urls:
        msg += f"; `htaf datasets --fetch {dataset}` downloads it from {off.urls[0]}"
    return msg + "."


def file_digests(path: Path, algos: Iterable[str]) -> dict[str, str]:
    """Hex digests of a file, read once in chunks."""
    hashes = {a: hashlib.new(a) for a in algos}
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                for h in hashes.values():
                    h.update(chunk)
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e})") from e
    return {a: h.hexdigest() for a, h in hashes.items()}


def verify_file(dataset: str, path: Path, off: Official) -> str:
    """Check ``path`` against the published checksums; a one-line report, or DataError."""
    want = off.digests
    if not want:
        return f"{path}: no published checksum recorded; not verified"
    got = file_digests(path, want)
    for algo, value in want.items():
        if got[algo] != value.lower():
            raise DataError(
                f"{path}: {algo} {got[algo]} differs from the official {value} "
                f"({off.checksum_source}); the file is truncated, corrupt or not the official "
                f"one. Replace it with the official file at {path}"
                + (f" (`htaf datasets --fetch {dataset}` downloads it)" if off.urls else "")
            )
    return f"{path}: OK ({', '.join(f'{a} {got[a]}' for a in want)})"


def download(dataset: str, off: Official, folder: Path) -> Path:
    """Fetch ``off`` into ``folder`` (its published checksums checked before it appears)."""
    if not off.urls:
        raise DataError(
            f"dataset {dataset!r}: {off.name!r} cannot be downloaded automatically. "
            + where_to_put(dataset, off, [folder])
        )
    dest = folder / off.name
    errors = []
    for url in off.urls:  # mirrors, in order; each failure leaves nothing behind
        try:
            fetch(url, dest, digests=off.digests)
            return dest
        except DataError as e:
            errors.append(str(e))
    raise DataError(" | ".join(errors))


def locate(
    dataset: str,
    off: Official,
    data_dir: str | Path | None,
    download_ok: bool,
    folder: str | None = None,
) -> Path:
    """Path of ``folder`` (an unpacked copy, if given and found) or else of the file ``off``.

    Downloads ``off`` into the first search folder when it is missing and ``download_ok``.
    """
    dirs = search_dirs(data_dir)
    for d in dirs:
        if folder and (d / folder).is_dir():
            return d / folder
    found = off.find(dirs)
    if found is not None:
        return found
    if download_ok:
        return download(dataset, off, dirs[0])
    also = f" (or the unpacked folder {folder!r})" if folder else ""
    raise DataError(
        f"dataset {dataset!r}: {off.name!r}{also} not found. " + where_to_put(dataset, off, dirs)
    )


def _safe_name(archive: Path, name: str) -> PurePosixPath:
    """A member path that stays inside the target folder, or DataError (path traversal)."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataError(f"{archive}: unsafe member path {name!r} (outside the target folder)")
    return p


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for m in tf:  # one pass: a .tgz is not seekable cheaply
            _safe_name(archive, m.name)
            if m.isfile() or m.isdir():  # links and device files are never needed: skipped
                tf.extract(m, into, set_attrs=False, **TAR_FILTER)


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _safe_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                continue
            zf.extract(info, into)


def extract(dataset: str, archive: Path, top: str) -> Path:
    """Unpack ``archive`` beside itself; returns the folder ``top`` it holds.

    Safe: members leaving the target folder are refused, links skipped. Atomic: everything is
    unpacked into a temporary folder first and ``top`` is moved into place last, so a folder
    ``top`` that exists is complete.
    """
    dest = archive.parent
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".{top}.", suffix=".part"))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        else:
            _extract_tar(archive, tmp)
        if not (tmp / top).is_dir():
            raise DataError(f"{archive}: holds no folder {top!r}; is it the official archive?")
        for entry in sorted(tmp.iterdir(), key=lambda p: p.name == top):  # ``top`` last
            if not (dest / entry.name).exists():
                os.replace(entry, dest / entry.name)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        raise DataError(
            f"{archive}: cannot unpack ({e}); the archive is truncated or corrupt. Replace it "
            f"with the official file (`htaf datasets --fetch {dataset}`, then "
            f"`htaf datasets --verify {dataset}`)"
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / top


def tar_members(dataset: str, archive: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The bytes of the named regular-file members of a tar(.gz) archive, in one pass.

    Nothing is written to disk, so no member path can escape anywhere.
    """
    wanted = set(names)
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tf:
            for m in tf:
                name = m.name.removeprefix("./")
                if name in wanted and m.isfile():
                    f = tf.extractfile(m)
                    assert f is not None  # regular files always have a body
                    out[name] = f.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(
            f"{archive}: cannot read the archive ({e}); it is truncated or corrupt. Replace it "
            f"with the official file (`htaf datasets --fetch {dataset}`)"
        ) from e
    missing = sorted(wanted - set(out))
    if missing:
        raise DataError(f"{archive}: member(s) {missing} missing; is it the official archive?")
    return out
