"""The command line parses before torch loads (issue 23): ``htaf --help``, every sub-command's
``--help`` and every usage error answer without importing torch (or numpy), with exit status 0
for help and 2 for a usage error. Only which modules are loaded is checked, never timings
(``benchmarks/cli_startup.py`` times them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "numpy", "pandas", "sklearn", "matplotlib"]

# Runs ``python -m htaf ARGS`` in this process (as ``-m`` does), then prints on stderr which
# heavy modules it loaded and its exit status, as one JSON line.
WRAPPER = """
import json, runpy, sys
heavy = json.loads(sys.argv[1])
sys.argv = ["htaf", *sys.argv[2:]]
try:
    runpy.run_module("htaf", run_name="__main__", alter_sys=True)
    status = 0
except SystemExit as exit:
    status = exit.code if isinstance(exit.code, int) else 1
print("RESULT " + json.dumps([status, [m for m in heavy if m in sys.modules]]), file=sys.stderr)
"""


def run_htaf(*args: str) -> tuple[int, list[str], subprocess.CompletedProcess]:
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(HEAVY), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = [x for x in out.stderr.splitlines() if x.startswith("RESULT ")]
    assert line, out.stderr
    status, loaded = json.loads(line[-1].removeprefix("RESULT "))
    return status, loaded, out


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["compare", "--help"],
        ["study", "--help"],
        ["study", "convex", "--help"],
        ["--version"],
    ],
)
def test_help_answers_before_torch_loads(args):
    status, loaded, out = run_htaf(*args)
    assert status == 0, out.stderr
    assert loaded == [], f"htaf {' '.join(args)} imported {loaded}"
    assert out.stdout.startswith(("usage: htaf", "htaf ")), out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "--bogus"],
        ["--bogus"],
        ["nope"],
        ["compare", "--seeds", "three"],
        ["compare", "--backend", "spark"],
        ["compare", "--family", "dhn", "--task", "bnn"],
        ["train"],
        ["study", "convex"],
        ["study", "gradient-flow", "--out", "x", "--optimizer", "lbfgs"],
    ],
)
def test_usage_errors_exit_2_before_torch_loads(args):
    status, loaded, out = run_htaf(*args)
    assert status == 2, out.stderr
    assert "error:" in out.stderr and "usage: htaf" in out.stderr, out.stderr
    assert loaded == [], f"htaf {' '.join(args)} imported {loaded}"


def test_every_subcommand_help_answers_before_torch_loads():
    """Every command and study found in the parser, in one process: all answer ``--help``
    with status 0 and none imports a heavy module."""
    code = (
        "import argparse, contextlib, io, json, sys\n"
        "from htaf.cli import build_parser, main\n"
        "def commands(parser, prefix):\n"
        "    for action in parser._actions:\n"
        "        if isinstance(action, argparse._SubParsersAction):\n"
        "            for name, sub in action.choices.items():\n"
        "                yield [*prefix, name]\n"
        "                yield from commands(sub, [*prefix, name])\n"
        "seen = {}\n"
        "for cmd in commands(build_parser(), []):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main([*cmd, '--help'])\n"
        "        except SystemExit as exit:\n"
        "            seen[' '.join(cmd)] = exit.code\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps([seen, [m for m in heavy if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen, loaded = json.loads(out.stdout)
    assert {"compare", "train", "estimators", "study", "study convex"} <= set(seen)
    assert all(code == 0 for code in seen.values()), seen
    assert loaded == [], loaded


def test_import_htaf_loads_no_torch_and_names_resolve_on_first_use():
    code = (
        "import sys, htaf\n"
        "print('torch' in sys.modules)\n"
        "from htaf import get, htaf as fn\n"
        "print('torch' in sys.modules, callable(fn), htaf.get is get, htaf.htaf is fn)\n"
        "print(type(get('htaf')).__name__, htaf.functional.htaf is fn)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["False", "True True True True"]
