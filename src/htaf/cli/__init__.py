"""The ``htaf`` command line. Each sub-command lives in its own module with ``add_parser``.

Bad input (unknown names, bad files, bad parameters) prints ``htaf CMD: error: ...`` to stderr
and exits with status 2; nothing is written. A run that fails after its input was accepted
(e.g. diverged training) prints the same kind of line and exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from htaf import __version__

#: Modules defining ``add_parser(subparsers)``; each sets ``func`` on its parser.
COMMAND_MODULES = [
    "htaf.cli.estimators_cmd",
    "htaf.cli.datasets_cmd",
    "htaf.cli.families_cmd",
    "htaf.cli.plot",
    "htaf.cli.train",
    "htaf.cli.compare",
    "htaf.cli.runs",
    "htaf.cli.report_cmd",
    "htaf.cli.study",
    "htaf.cli.concepts",
    "htaf.cli.diagnose_cmd",
]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
#: What bad input raises: unknown names and bad values (``ValueError``, incl. ``ConfigError``,
#: ``DataError``, ``CheckpointError``, JSON/TOML errors) and unusable paths (``OSError``).
BAD_INPUT_ERRORS = (ValueError, TypeError, KeyError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htaf",
        description="Train and inspect networks with binary activations (HTAF and friends).",
    )
    parser.add_argument("--version", action="version", version=f"htaf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `htaf estimators | head`
        sys.stderr.close()
        return 0
    except BAD_INPUT_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"htaf {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as err:  # a run that failed after its input was accepted
        print(f"htaf {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
