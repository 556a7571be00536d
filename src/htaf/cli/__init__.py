"""The ``htaf`` command line. Each sub-command lives in its own module with ``add_parser``.

Bad input (unknown names, bad files, bad parameters) prints ``htaf CMD: error: ...`` to stderr
and exits with status 2; nothing is written. Every command checks its input before it writes,
and what those checks raise is a ``ValueError`` (``ConfigError``, ``DataError``...) or, for an
unusable path, an ``OSError``. A run that fails after its input was accepted (diverged
training, a full disk) prints the same kind of line and exits with status 1; anything else
that goes wrong is a bug: its traceback is printed too, and the status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
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
    "htaf.cli.export_cmd",
    "htaf.cli.predict_cmd",
]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
#: What the input checks raise: unknown names and bad values (``ValueError``, incl.
#: ``ConfigError``, ``DataError``, ``CheckpointError``, JSON/TOML errors) and unusable paths
#: (``OSError``). Errors after a run has started are raised as ``RuntimeError`` (``RunFailed``
#: wraps the others), so they never pass for bad input.
BAD_INPUT_ERRORS = (ValueError, OSError)


class _AliasedFlag(argparse.Action):
    """Stores the value of a flag that has a former name (``--family``, formerly ``--task``);
    the two spellings given with different values are an error (exit status 2)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:  # fmt: skip
        # which spelling gave which value, in this parse (names starting "_" are not options)
        given = vars(namespace).setdefault(f"_{self.dest}_given", {})
        for other, value in given.items():
            if other != option_string and value != values:
                same = " and ".join(self.option_strings)
                parser.error(
                    f"{other} {value} and {option_string} {values} disagree: {same} are the "
                    "same option"
                )
        given[option_string] = values
        setattr(namespace, self.dest, values)


def add_family_flag(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """``--family NAME``, with ``--task`` (its former name) as an alias."""
    parser.add_argument(
        "--family", "--task", dest="family", default=default, action=_AliasedFlag,
        metavar="FAMILY", help=f"{help}; --task is its former name",
    )  # fmt: skip


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
        print(f"htaf {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as err:  # a run that failed after its input was accepted
        if not expected_failure(err):
            traceback.print_exception(err)
        print(f"htaf {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as err:  # a bug (TypeError, KeyError, ...): never passes for bad input
        traceback.print_exception(err)
        print(f"htaf {args.command}: internal error: {type(err).__name__}: {err}",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED


def expected_failure(err: BaseException) -> bool:
    """Whether a failed run failed for a reason its message explains (the training diverged,
    the disk or the memory ran out), so that no traceback is needed; else it is a bug."""
    from htaf.train.engine import TrainingDiverged
    from htaf.train.run import RunFailed

    cause = err.error if isinstance(err, RunFailed) else err
    out_of_memory = type(cause).__name__ == "OutOfMemoryError"  # torch's, for any device
    return isinstance(cause, TrainingDiverged | OSError | MemoryError) or out_of_memory


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
