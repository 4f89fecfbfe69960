"""The readout commands: ``spec``, ``scramble``, ``unscramble``, ``firmware-sim`` and ``golden-vectors``."""

from __future__ import annotations

import argparse
import sys

from edge.cli.args import epoch, path
from edge.imageio import check_writable, read_frame, write_image
from firmware_sim.keys import MasterKey
from firmware_sim.spec import load_spec


def register(commands) -> None:
    spec = commands.add_parser("spec", help="print a readout spec (preset or file) as TOML")
    spec.add_argument("spec", nargs="?", default=None, metavar="PRESET_OR_FILE")
    spec.set_defaults(handler=spec_command)

    for name, handler, text in (
        ("scramble", scramble_command, "read a frame out with the edge transform (fast)"),
        ("unscramble", unscramble_command, "put a measurement's positions back in order (key holders only)"),
        ("firmware-sim", firmware_sim_command, "read a frame out with the reference model (slow, exact)"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--key", required=True, type=path, metavar="KEYFILE", help="master key file (mode 0600)")
        sub.add_argument("--spec", default=None, metavar="SPEC",
                         help="readout spec: a preset (rgb8, gray8, rgb10, ...) or a TOML file")
        sub.add_argument("--epoch", type=epoch, default=0, help="key epoch of the sensor layout (default 0)")
        sub.add_argument("input", type=path, metavar="IN", help="image file (PNG, JPEG, ...) or .npy")
        sub.add_argument("output", type=path, metavar="OUT", help="output file: .png (8/16-bit) or .npy")
        sub.set_defaults(handler=handler)

    vectors = commands.add_parser("golden-vectors", help="check or regenerate firmware_sim's golden vectors")
    group = vectors.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="fail if the implementation drifted")
    group.add_argument("--write", action="store_true", help="regenerate the vectors file")
    vectors.add_argument("path", nargs="?", type=path, default=None, help="vectors file (default: the bundled one)")
    vectors.set_defaults(handler=golden_vectors_command)


def spec_command(args: argparse.Namespace) -> int:
    print(load_spec(args.spec).to_toml(), end="")
    return 0


def _load(args: argparse.Namespace):
    """Key, spec and input of a readout command, each checked before any work is done."""
    from edge.outputs import check_outputs

    check_outputs({"OUT": args.output}, {"IN": args.input, "--key": args.key, "--spec": args.spec})
    key = MasterKey.load(args.key)
    spec = load_spec(args.spec)
    check_writable(args.output)
    return key, spec, read_frame(args.input)


def scramble_command(args: argparse.Namespace) -> int:
    from edge.transform import AdcTransform

    key, spec, frame = _load(args)
    frame = spec.check_frame(frame, what=f"input '{args.input}'")
    measurement = AdcTransform(key, spec)(frame, epoch=args.epoch)
    write_image(args.output, measurement)
    print(f"wrote {args.output}: measurement {measurement.shape} {measurement.dtype}, key {key.fingerprint}")
    return 0


def unscramble_command(args: argparse.Namespace) -> int:
    from edge.transform import AdcTransform

    key, spec, measurement = _load(args)
    restored = AdcTransform(key, spec).inverse(measurement, epoch=args.epoch)
    write_image(args.output, restored, private=True)
    print(f"warning: {args.output} holds a PLAIN (unscrambled) picture (mode 0600); protect or delete it",
          file=sys.stderr)
    print(f"wrote {args.output}: {restored.shape} {restored.dtype}, key {key.fingerprint}")
    return 0


def firmware_sim_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from firmware_sim.readout import readout

    key, spec, frame = _load(args)
    frame = spec.check_frame(frame, what=f"input '{args.input}'")
    height, width, _ = frame.shape
    with tqdm(total=height * width, unit="px", desc="firmware-sim", disable=None, leave=False) as bar:
        measurement = readout(frame, key, spec, args.epoch, progress=bar.update)
    write_image(args.output, measurement)
    print(f"wrote {args.output}: measurement {measurement.shape} {measurement.dtype}, key {key.fingerprint}")
    return 0


def golden_vectors_command(args: argparse.Namespace) -> int:
    from firmware_sim import vectors

    if args.write and args.path is not None:
        from edge.outputs import check_outputs

        check_outputs({"PATH": args.path}, {})
    argv = ["--write" if args.write else "--check"] + ([str(args.path)] if args.path else [])
    return vectors.main(argv)
