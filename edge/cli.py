"""The ``keycam`` command line: a thin layer over the library.

Every known error (``KeycamError``) becomes one line on stderr and exit status
1; usage errors exit 2 (argparse); Ctrl-C exits 130. Keys are shown by
fingerprint only.

    keycam keygen KEYFILE [--force]
    keycam fingerprint KEYFILE
    keycam spec [PRESET_OR_FILE]
    keycam scramble     --key KEYFILE [--spec SPEC] [--epoch E] IN OUT
    keycam unscramble   --key KEYFILE [--spec SPEC] [--epoch E] IN OUT
    keycam firmware-sim --key KEYFILE [--spec SPEC] [--epoch E] IN OUT
    keycam golden-vectors (--check | --write) [PATH]
    keycam demo [--out DIR] [--image PATH] [--key KEYFILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.errors import KeycamError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _epoch(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"epoch {text!r} is not an integer") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"epoch {value} must be in 0 .. 2**64-1")
    return value


def _readout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", required=True, type=Path, metavar="KEYFILE", help="master key file (mode 0600)")
    parser.add_argument(
        "--spec", default=None, metavar="SPEC", help="readout spec: a preset (rgb8, gray8, rgb10, ...) or a TOML file"
    )
    parser.add_argument("--epoch", type=_epoch, default=0, help="key epoch of the sensor layout (default 0)")
    parser.add_argument("input", type=Path, metavar="IN", help="image file (PNG, JPEG, ...) or .npy")
    parser.add_argument("output", type=Path, metavar="OUT", help="output file: .png (8/16-bit) or .npy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keycam", description="privacy-preserving edge camera")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="write a fresh 256-bit master key (mode 0600)")
    keygen.add_argument("keyfile", type=Path, metavar="KEYFILE")
    keygen.add_argument("--force", action="store_true", help="replace an existing key file (its key is lost)")
    keygen.set_defaults(handler=_keygen)

    fingerprint = commands.add_parser("fingerprint", help="print a key's public fingerprint")
    fingerprint.add_argument("keyfile", type=Path, metavar="KEYFILE")
    fingerprint.set_defaults(handler=_fingerprint)

    spec = commands.add_parser("spec", help="print a readout spec (preset or file) as TOML")
    spec.add_argument("spec", nargs="?", default=None, metavar="PRESET_OR_FILE")
    spec.set_defaults(handler=_spec)

    for name, handler, text in (
        ("scramble", _scramble, "read a frame out with the edge transform (fast)"),
        ("unscramble", _unscramble, "put a measurement's positions back in order (key holders only)"),
        ("firmware-sim", _firmware_sim, "read a frame out with the reference model (slow, exact)"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        _readout_arguments(sub)
        sub.set_defaults(handler=handler)

    vectors = commands.add_parser("golden-vectors", help="check or regenerate firmware_sim's golden vectors")
    group = vectors.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="fail if the implementation drifted")
    group.add_argument("--write", action="store_true", help="regenerate the vectors file")
    vectors.add_argument("path", nargs="?", type=Path, default=None, help="vectors file (default: the bundled one)")
    vectors.set_defaults(handler=_golden_vectors)

    demo = commands.add_parser("demo", help="the embedded default job (no camera, no server)")
    demo.add_argument("--out", type=Path, default=Path("keycam-demo"), help="output folder (default keycam-demo/)")
    demo.add_argument("--image", type=Path, default=None, help="an 8-bit colour picture instead of the sample photo")
    demo.add_argument("--key", type=Path, default=None, help="use this key instead of generating one")
    demo.set_defaults(handler=_demo)
    return parser


# -- handlers ---------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    from firmware_sim.keys import MasterKey

    key = MasterKey.generate()
    key.save(args.keyfile, force=args.force)
    print(f"wrote {args.keyfile} (mode 0600), fingerprint {key.fingerprint}")
    return 0


def _fingerprint(args: argparse.Namespace) -> int:
    from firmware_sim.keys import MasterKey

    print(MasterKey.load(args.keyfile).fingerprint)
    return 0


def _spec(args: argparse.Namespace) -> int:
    from firmware_sim.spec import load_spec

    print(load_spec(args.spec).to_toml(), end="")
    return 0


def _load_readout(args: argparse.Namespace):
    """Key, spec and input of a readout command, each checked before any work is done."""
    from edge.imageio import check_writable, read_frame
    from firmware_sim.keys import MasterKey
    from firmware_sim.spec import load_spec

    key = MasterKey.load(args.key)
    spec = load_spec(args.spec)
    check_writable(args.output)
    return key, spec, read_frame(args.input)


def _scramble(args: argparse.Namespace) -> int:
    from edge.imageio import write_image
    from edge.transform import AdcTransform

    key, spec, frame = _load_readout(args)
    frame = spec.check_frame(frame, what=f"input '{args.input}'")
    measurement = AdcTransform(key, spec)(frame, epoch=args.epoch)
    write_image(args.output, measurement)
    print(f"wrote {args.output}: measurement {measurement.shape} {measurement.dtype}, key {key.fingerprint}")
    return 0


def _unscramble(args: argparse.Namespace) -> int:
    from edge.imageio import write_image
    from edge.transform import AdcTransform

    key, spec, measurement = _load_readout(args)
    restored = AdcTransform(key, spec).inverse(measurement, epoch=args.epoch)
    write_image(args.output, restored)
    print(f"warning: {args.output} holds a PLAIN (unscrambled) picture; protect or delete it", file=sys.stderr)
    print(f"wrote {args.output}: {restored.shape} {restored.dtype}, key {key.fingerprint}")
    return 0


def _firmware_sim(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from edge.imageio import write_image
    from firmware_sim.readout import stream

    key, spec, frame = _load_readout(args)
    frame = spec.check_frame(frame, what=f"input '{args.input}'")
    height, width, channels = frame.shape
    codes: list[int] = []
    steps = tqdm(
        stream(frame, key, spec, args.epoch),
        total=height * width,
        unit="px",
        desc="firmware-sim",
        disable=None,  # only on a terminal
        leave=False,
    )
    for pixel in steps:
        codes.extend(pixel.codes)
    measurement = np.array(codes, dtype=spec.output_dtype).reshape(height, width, channels)  # stream -> (H, W, C)
    write_image(args.output, measurement)
    print(f"wrote {args.output}: measurement {measurement.shape} {measurement.dtype}, key {key.fingerprint}")
    return 0


def _golden_vectors(args: argparse.Namespace) -> int:
    from firmware_sim import vectors

    argv = ["--write" if args.write else "--check"] + ([str(args.path)] if args.path else [])
    return vectors.main(argv)


def _demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    result = run_demo(args.out, image=args.image, key_path=args.key)
    height, width, channels = result.shape
    print(f"key        {result.key_path} (mode 0600), fingerprint {result.fingerprint}")
    print(f"picture    {result.image} ({height}x{width}, {channels} channels)")
    print(f"readout    firmware_sim {result.firmware_seconds:.2f} s, edge transform {result.edge_seconds * 1e3:.1f} ms")
    print(f"agreement  firmware_sim == edge transform, byte for byte: {result.identical}")
    print(f"inverse    right key restores the picture exactly: {result.restored}")
    print(f"wrong key  mean absolute error {result.wrong_key_mean_abs_error:.1f} codes (of 255)")
    print(f"wrote      {result.panel} (plain | private | unscrambled | wrong key)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeycamError as error:
        print(f"keycam {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"keycam {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
