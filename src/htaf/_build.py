"""The one build helper of htaf's compiled code (private): compiler, cache, flags, load-once.

Every C and C++ source lives in ``htaf/csrc/`` (package data, so an installed htaf has them)
and is compiled on first use, with the system compiler, into a per-user cache directory; the
result is loaded with :mod:`ctypes` (or :func:`torch.ops.load_library`). Each compiled fast path
is optional: any failure (no compiler, a read-only cache, a library that does not load) leaves
its caller on a pure-PyTorch path.

Why on first use and not at install time: an install-time build would need a compiler on every
machine that installs htaf (the two-command set-up, ``uv sync`` then run, needs none), could not
use ``-march=native`` on a wheel built elsewhere, and would tie the native operator to the
PyTorch it was built against; the first-use build costs about 0.3 s for the C kernels and 15 s
for the operator, once per machine, and its cache key covers all of that.

Environment: ``HTAF_DISABLE_KERNELS=1`` turns compiled code off; ``HTAF_KERNEL_CACHE`` sets the
cache directory (default ``$XDG_CACHE_HOME/htaf`` or ``~/.cache/htaf``); ``CC`` and ``CXX`` the
compilers; ``HTAF_KERNEL_ISA`` the instruction set (``native``, the default: this CPU's;
``avx2``: AVX2 + FMA, what a CPU without AVX-512 runs, to measure it on one that has it;
``generic``: the compiler's default target).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "CSRC", "ISA_FLAGS", "Once", "cache_dir", "cached_library", "compile_library", "compiler",
    "cxx_compiler", "first_library", "flag_variants", "isa_flags", "kernels_allowed", "source_key",
]  # fmt: skip

logger = logging.getLogger(__name__)

#: The folder of every C/C++ source and header.
CSRC = Path(__file__).with_name("csrc")

# The flags of every ctypes library. -fno-trapping-math lets the compiler evaluate both sides
# of a select (no FP traps are ever enabled under Python); without it GCC does not vectorise
# the HTAF loops for AVX2 and they run scalar. No -ffast-math: NaN in must give NaN out.
BASE_FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math"]
STD_FLAGS = {".c": "-std=gnu11", ".cpp": "-std=c++17"}
ISA_FLAGS = {"native": ["-march=native"], "avx2": ["-mavx2", "-mfma"], "generic": []}


def cache_dir() -> Path:
    """Where compiled libraries are kept: ``$HTAF_KERNEL_CACHE``, else the user's cache."""
    env = os.environ.get("HTAF_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "htaf"


def cpu_signature() -> str:
    """The CPU's feature flags (what ``-march=native`` depends on)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def compiler(env: str = "CC", names: tuple[str, ...] = ("cc", "gcc", "clang")) -> str | None:
    """The compiler named by ``$env`` (None if it is not on PATH), else the first of ``names``."""
    chosen = os.environ.get(env, "").split()
    if chosen:
        return chosen[0] if shutil.which(chosen[0]) else None
    return next((name for name in names if shutil.which(name)), None)


def cxx_compiler() -> str | None:
    """The C++ compiler: ``$CXX``, else ``c++``, ``g++`` or ``clang++``."""
    return compiler("CXX", ("c++", "g++", "clang++"))


def kernels_allowed(env: str = "HTAF_DISABLE_KERNELS") -> bool:
    """Whether compiled code may be built and loaded: ``$env`` is unset, empty or ``0``, and
    this is Linux (the builds are only tested with GCC and Clang there)."""
    if os.environ.get(env, "").strip() not in ("", "0"):
        return False
    return sys.platform.startswith("linux")


def isa_flags() -> list[str]:
    """The target flags named by ``$HTAF_KERNEL_ISA`` (default ``native``: this CPU's)."""
    name = os.environ.get("HTAF_KERNEL_ISA", "").strip() or "native"
    if name not in ISA_FLAGS:
        logger.warning("htaf: HTAF_KERNEL_ISA must be one of %s, got %r: using native",
                       ", ".join(ISA_FLAGS), name)  # fmt: skip
        name = "native"
    return ISA_FLAGS[name]


def flag_variants() -> list[list[str]]:
    """Extra flags to try in order, best first; the first that compiles wins (a compiler
    without OpenMP, or one that does not know the target, still builds a later one).
    ``-march=native`` is safe because the cache key includes the CPU's feature flags."""
    isa = isa_flags()
    return [[*isa, "-fopenmp"], ["-fopenmp"], isa, []]


def base_flags(source: str) -> list[str]:
    """:data:`BASE_FLAGS` with the language standard of ``source`` (a file in :data:`CSRC`)."""
    return [STD_FLAGS[Path(source).suffix], *BASE_FLAGS]


def source_key(source: str) -> str:
    """The text of ``source`` and of every header beside it: what the binary depends on."""
    headers = sorted(CSRC.glob("*.h"))
    return "\0".join(p.read_text() for p in [CSRC / source, *headers])


def compile_library(
    commands: Callable[[Path], list[list[str]]], target: Path, timeout: float = 600
) -> bool:
    """Build the shared library ``target``; False if it cannot be built.

    ``commands(out)`` lists alternative command lines that write ``out``, tried in order until
    one succeeds. They run in a temporary folder beside ``target`` and the build ends with an
    atomic rename, so concurrent builders never see a partial file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        out = Path(tmp) / target.name
        for cmd in commands(out):
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except (OSError, subprocess.SubprocessError) as exc:
                logger.debug("htaf: %s failed: %s", cmd, exc)
                return False
            if res.returncode == 0:
                os.replace(out, target)
                return True
            logger.debug("htaf: %s failed:\n%s", cmd, res.stderr[-4000:])
    return False


def compile_source(source: str, compiler: str, flags: Sequence[str], target: Path) -> bool:
    """``compiler flags -I csrc csrc/source -o target`` (2 minutes at most)."""

    def command(out: Path) -> list[list[str]]:
        return [[compiler, *flags, f"-I{CSRC}", str(CSRC / source), "-o", str(out)]]

    return compile_library(command, target, timeout=120)


def cached_library(
    prefix: str,
    source: str,
    compiler: str,
    flags: Sequence[str],
    abi: tuple[str, int],
    loader: Callable[[str], ctypes.CDLL] = ctypes.CDLL,
) -> ctypes.CDLL | None:
    """``csrc/source`` compiled with ``compiler flags`` and loaded, or None if that fails.

    The library is cached as ``<prefix>_<key>.so`` in :func:`cache_dir`, the key hashing
    everything that changes the binary (source and headers, compiler, flags, machine, platform
    and the CPU's feature flags, so ``-march=native`` is safe with a shared home directory); it
    is compiled only when missing. ``abi = (function, version)``: the library must export
    ``int function(void)`` returning ``version``, which catches a stale or foreign file.
    ``loader`` is :class:`ctypes.CDLL` (releases the GIL during calls) or :class:`ctypes.PyDLL`.
    """
    parts = [source_key(source), compiler, *flags, platform.machine(), sys.platform,
             cpu_signature()]  # fmt: skip
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]
    target = cache_dir() / f"{prefix}_{key}.so"

    if not target.exists() and not compile_source(source, compiler, flags, target):
        return None
    name, version = abi
    try:
        lib = loader(str(target))
        found = getattr(lib, name)()
    except (OSError, AttributeError) as exc:
        logger.debug("htaf: cannot load %s: %s", target, exc)
        return None
    if found != version:
        logger.debug("htaf: %s has ABI %s, expected %s", target, found, version)
        return None
    return lib


def first_library(
    prefix: str,
    source: str,
    compiler: str,
    abi: tuple[str, int],
    loader: Callable[[str], ctypes.CDLL] = ctypes.CDLL,
) -> tuple[ctypes.CDLL, Sequence[str]] | None:
    """The first of :func:`flag_variants` with which :func:`cached_library` builds and loads
    ``csrc/source``, with those extra flags; None if none does."""
    for extra in flag_variants():
        flags = [*base_flags(source), *extra]
        lib = cached_library(prefix, source, compiler, flags, abi, loader)
        if lib is not None:
            return lib, extra
    return None


T = TypeVar("T")


class Once(Generic[T]):
    """A value built on first use, by whichever thread asks first, then shared.

    Every compiled fast path is optional: building one can take seconds (a compiler run) and
    fail in many ways (no compiler, a read-only cache, a library that does not load), and none
    of that may break the pure-PyTorch path. So ``build`` runs at most once, under a lock that
    later calls skip (they read one attribute), and a build that raises counts as one that
    returned None: logged at debug level as ``what``, because the slow path is the answer.

    ``result`` holds the value (``Once.UNBUILT`` until the first call). Tests set it to force a
    path: ``monkeypatch.setattr(once, "result", None)`` takes the slow one, and
    ``Once.UNBUILT`` (or :meth:`reset`) makes the next call build again.
    """

    UNBUILT: Any = object()

    def __init__(self, build: Callable[[], T | None], what: str) -> None:
        self.build = build
        self.what = what
        self.result: Any = Once.UNBUILT
        self._lock = threading.Lock()

    def __call__(self) -> T | None:
        result = self.result
        if result is not Once.UNBUILT:
            return result
        with self._lock:
            if self.result is Once.UNBUILT:
                try:
                    self.result = self.build()
                except Exception as exc:  # never let the fast path break the slow one
                    logger.debug("%s unavailable: %s", self.what, exc)
                    self.result = None
            return self.result

    def reset(self) -> None:
        """Forget the value: the next call builds again."""
        with self._lock:
            self.result = Once.UNBUILT
