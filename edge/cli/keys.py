"""``keycam keygen`` and ``keycam fingerprint``: keys are files of mode 0600, shown only by fingerprint."""

from __future__ import annotations

import argparse

from edge.cli.args import path
from firmware_sim.keys import MasterKey


def register(commands) -> None:
    keygen = commands.add_parser("keygen", help="write a fresh 256-bit master key (mode 0600)")
    keygen.add_argument("keyfile", type=path, metavar="KEYFILE")
    keygen.add_argument("--force", action="store_true", help="replace an existing key file (its key is lost)")
    keygen.set_defaults(handler=keygen_command)

    fingerprint = commands.add_parser("fingerprint", help="print a key's public fingerprint")
    fingerprint.add_argument("keyfile", type=path, metavar="KEYFILE")
    fingerprint.set_defaults(handler=fingerprint_command)


def keygen_command(args: argparse.Namespace) -> int:
    key = MasterKey.generate()
    key.save(args.keyfile, force=args.force)
    print(f"wrote {args.keyfile} (mode 0600), fingerprint {key.fingerprint}")
    return 0


def fingerprint_command(args: argparse.Namespace) -> int:
    print(MasterKey.load(args.keyfile).fingerprint)
    return 0
