"""What every command shares: the command declaration, the parser, logging, and the exit codes.

A command module declares one :class:`Command`. ``unisurg`` (:mod:`unisurg.cli.app`) builds a parser
with all of them; a DVC stage script builds one with its own alone (:func:`run_command`), so the
stage loads, and depends on, this module and its command's module only. Both parsers read a command
line the same way: same usage, help, errors and exit codes.

A user's mistake (:class:`unisurg.errors.UsageError`, a missing file) is one log line naming the
value and exit code 2; the traceback only with ``-v``. Only our loggers speak at INFO.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config import Params, load_params
from ..errors import UsageError

# every command logs as "unisurg": its lines read the same whichever module runs it
log = logging.getLogger("unisurg")


@dataclass(frozen=True)
class Command:
    """One sub-command of ``unisurg``: its name, one-line help, options and what it runs."""

    name: str
    help: str  # also the command's description in its own -h
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # -> the exit code
    # a pipeline stage's example override: stages read params.yaml (--params, --set); tools have None
    set_example: str | None = None


def stage_params(args: argparse.Namespace) -> Params:
    """The parameters a stage runs with: --params, then each --set (strictly validated)."""
    return load_params(args.params, args.set)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default at the end of its help (unless the help already says it, or there is
    none to show); descriptions and epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        empty = d is None or d is False or d is argparse.SUPPRESS or d == []  # `0 in (False,)` is True: no `in`
        if "default" in text or empty or action.required or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _common() -> argparse.ArgumentParser:
    """-v / -q, accepted before or after the command (``unisurg -v curate`` = ``unisurg curate -v``)."""
    p = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a sub-command's own default must not overwrite what was given before the command
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logs; tracebacks")
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=argparse.SUPPRESS,
        help="no progress bars (the DVC stages' setting); -qq: also only warnings and errors",
    )
    return p


def build_parser(
    commands: Sequence[Command], description: str | None = None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """``unisurg`` with these sub-commands, in this order (the top-level help lists them so)."""
    common = _common()
    ap = argparse.ArgumentParser(
        prog="unisurg", description=description, epilog=epilog, formatter_class=_Formatter, parents=[common]
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        _add_command(sub, common, command)
    return ap


def _add_command(sub, common: argparse.ArgumentParser, command: Command) -> None:
    sp = sub.add_parser(
        command.name, help=command.help, description=command.help, parents=[common], formatter_class=_Formatter
    )
    if command.set_example is not None:
        sp.add_argument(
            "--params",
            default=None,
            help="pipeline parameters (default: ./params.yaml if present, else the built-in defaults); "
            "relative paths inside it are relative to its folder",
        )
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"override a parameter, e.g. --set {command.set_example} (repeatable; the value is YAML)",
        )
    sp.set_defaults(fn=command.run)
    command.add_arguments(sp)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unisurg")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


# --------------------------------------------------------------------------- running a command


def run(
    argv: list[str] | None, commands: Sequence[Command], description: str | None = None, epilog: str | None = None
) -> int:
    """Parse ``argv`` with a parser of ``commands``, set up logging, run the command: -> its exit code."""
    args = build_parser(commands, description, epilog).parse_args(argv)
    args.verbose, args.quiet = getattr(args, "verbose", False), getattr(args, "quiet", 0)
    configure_logging(args.verbose, args.quiet)
    return guarded(lambda: args.fn(args), args.verbose)


def run_command(command: Command, argv: list[str]) -> int:
    """``unisurg NAME ARGV`` for a DVC stage script, by a parser that knows this command alone.

    Usage, help, errors and exit codes are those of ``unisurg NAME``: the top-level parser differs
    only by its description and epilog, which ``-h`` after the command never shows."""
    return run([command.name, *argv], [command])


_HANDLER = "unisurg-cli"


class _OursOrWarnings(logging.Filter):
    """Our records at the chosen level; every library's (Great Expectations logs hundreds of INFO
    lines per run, with its own logger levels) only from WARNING up."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "unisurg" or record.name.startswith(("unisurg.", "__main__"))
        return record.levelno >= (self.level if ours else logging.WARNING)


def configure_logging(verbose: bool = False, quiet: int = 0) -> None:
    """One stderr handler: unisurg's logs at INFO (DEBUG with -v, WARNING with -qq), libraries' at WARNING.

    A single -q only hides progress bars: the stages' INFO lines (what was kept, a resumed step, each
    benchmark's scores) stay in ``dvc repro``'s output."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet >= 2 else logging.INFO
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:  # a previous call's (tests call main often)
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_OursOrWarnings(level))
    root.addHandler(handler)  # other handlers (an embedding application's, pytest's) stay
    root.setLevel(min(level, logging.INFO))
    logging.getLogger("unisurg").setLevel(level)


def guarded(run: Callable[[], int], verbose: bool = False) -> int:
    """``run()``'s exit code, with a user's mistake as one error line and code 2 (a failed quality
    gate: 3); the traceback only when ``verbose``. Bugs (any other exception) keep theirs."""
    try:
        return run()
    except (UsageError, FileNotFoundError) as err:  # a user's mistake: the message says which value and why
        return _fail(err, 2, verbose)
    except BrokenPipeError:  # `unisurg benchmarks list | head`: the reader left, nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not raise again
        return 0
    except Exception as err:
        if not _gate_failed(err):
            raise  # a bug: its traceback, unchanged
        return _fail(err, 3, verbose)


def _gate_failed(err: Exception) -> bool:
    """Whether ``err`` is curation's QualityGateError. Imported here, when a command has failed, not at
    the top: only curate runs the gate, and the other stages must not load (and depend on) curation."""
    from ..curation.gate import QualityGateError

    return isinstance(err, QualityGateError)


def _fail(err: Exception, code: int, verbose: bool) -> int:
    """Log the error's message alone (with -v: and its traceback); -> the exit code."""
    if isinstance(err, FileNotFoundError) and err.filename:  # raised by open(): "[Errno 2] ..." -> "path: reason"
        msg = f"{err.filename}: {err.strerror.lower()}"
    else:
        msg = str(err)
    if verbose:
        log.exception("%s", msg)
    else:
        log.error("%s", msg)
    return code
