"""The ``keycam`` command line: a thin layer over the library, one module per command group.

Each group's module (``keys``, ``readout``, ``models``, ``checks``, ``capture``, ``lab``, ``serving``) registers
its commands' parsers beside their handlers, and a handler only parses, calls the library and
prints. Every known error (``KeycamError``), and any ``OSError`` or ``MemoryError`` the library did
not name itself, becomes one line on stderr and exit status 1; usage errors are one line too and exit
2; Ctrl-C exits 130 (a run stopped by SIGINT or SIGTERM: 130 or 143). Keys are shown by fingerprint only. ``keycam --help``
lists the commands; README.md documents them.
"""

from __future__ import annotations

import argparse
import sys

from edge.cli import capture, checks, keys, lab, models, readout, serving
from edge.cli.args import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from edge.errors import KeycamError
from edge.memory import keep_frame_memory

GROUPS = (keys, readout, models, checks, capture, lab, serving)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (exit 2) that points at ``--help`` instead of the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keycam", description="privacy-preserving edge camera")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_frame_memory()  # frames reuse warm memory instead of faulting in fresh pages every frame (edge.memory)
    try:
        return args.handler(args)
    except BrokenPipeError:  # the reader went away (`keycam inspect M | head`): not an error of the path or disk
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeycamError as error:
        print(f"keycam {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:  # what the library did not name itself: a full disk, a read-only folder, ...
        where = f"'{error.filename}': " if error.filename else ""
        print(f"keycam {args.command}: error: {where}{error.strerror or error}; check the path, its permissions "
              f"and the free space", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print(f"keycam {args.command}: error: out of memory: the model or the input is too large for this "
              f"machine", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"keycam {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader left


def _quiet_stdout() -> None:
    """Standard output points at nothing from here on: what is left in its buffer is not written at exit (which
    would raise BrokenPipeError again, as a warning on stderr)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (replaced in-process): nothing to flush there
        pass


if __name__ == "__main__":
    sys.exit(main())
