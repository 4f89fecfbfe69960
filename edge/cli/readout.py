"""The readout commands: ``spec``, ``scramble``, ``unscramble``, ``firmware-sim`` and ``golden-vectors``."""

from __future__ import annotations

import argparse
import sys

from edge.cli.args import count, epoch, path
from edge.imageio import check_writable, read_frame, write_image
from firmware_sim.keys import MasterKey
from firmware_sim.spec_files import load_spec


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
        if name != "unscramble":
            sub.add_argument("--frame", type=count, default=0, metavar="N",
                             help="sealed specs: the frame's number in its sensor run: its nonce (default 0)")
            sub.add_argument("--run", type=_run_id, default=None, metavar="HEX",
                             help="sealed specs: the sensor run's 32-hex-digit identifier (default: fresh random "
                                  "bytes; give the same one to compare scramble with firmware-sim)")
        sub.add_argument("input", type=path, metavar="IN", help="image file (PNG, JPEG, ...) or .npy")
        sub.add_argument("output", type=path, metavar="OUT", help="output file: .png (8/16-bit) or .npy")
        sub.set_defaults(handler=handler)

    vectors = commands.add_parser("golden-vectors", help="check or regenerate firmware_sim's golden vectors")
    group = vectors.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="fail if the implementation drifted")
    group.add_argument("--write", action="store_true", help="regenerate the vectors file")
    vectors.add_argument("path", nargs="?", type=path, default=None, help="vectors file (default: the bundled one)")
    vectors.set_defaults(handler=golden_vectors_command)


def _run_id(text: str) -> bytes:
    try:
        run = bytes.fromhex(text)
    except ValueError:
        run = b""
    if len(run) != 16:
        raise argparse.ArgumentTypeError(f"run {text!r} is not 32 hex digits (16 bytes)")
    return run


def spec_command(args: argparse.Namespace) -> int:
    print(load_spec(args.spec).to_toml(), end="")
    return 0


def _load(args: argparse.Namespace):
    """Key, spec and input of a readout command, each checked before any work is done."""
    from edge.outputs import check_outputs

    spec = load_spec(args.spec)
    seal_file = model_files_seal(args.output) if spec.is_sealed else None
    inputs = {"IN": args.input, "--key": args.key, "--spec": args.spec}
    if spec.is_sealed and getattr(args, "frame", None) is None:  # unscramble: the seal beside the input
        inputs["IN's seal"] = model_files_seal(args.input)
    check_outputs({"OUT": args.output, "OUT's seal": seal_file}, inputs)
    key = MasterKey.load(args.key)
    check_writable(args.output)
    return key, spec, read_frame(args.input)


def model_files_seal(path) -> object:
    """The seal written beside a sealed measurement's file: NAME.png -> NAME.png.seal."""
    from pathlib import Path

    from firmware_sim.words import SEAL_SUFFIX

    return Path(str(path) + SEAL_SUFFIX)


def _write_measurement(args: argparse.Namespace, key, spec, codes, frame, reference: bool = False) -> None:
    """Write a measurement, sealed under a sealed spec (the seal beside it), and say what was written;
    ``reference``: seal as firmware_sim's sensor does (a keystream core fed step by step), else as the device."""
    if spec.is_sealed:
        import os

        from edge.frame import Frame
        from edge.seal import Seal, Sealer
        from firmware_sim.files import write_atomic
        from firmware_sim.seal import SealHeader, seal_stream, spec_digest

        run = args.run or os.urandom(16)
        if reference:
            header = SealHeader(run, args.frame, args.epoch, args.frame, 0, codes.shape, key.fingerprint,
                                spec_digest(spec))
            sealed = seal_stream(map(tuple, codes.reshape(-1, codes.shape[2]).tolist()), key, spec, header)
            codes, seal = sealed.data, Seal(header, sealed.tag)
        else:
            sealer = Sealer(key, spec, run=run, counter=args.frame)
            codes, seal = sealer.seal(codes, Frame(frame, args.frame, 0, str(args.input)), args.epoch)
        write_atomic(model_files_seal(args.output), (seal.to_hex() + "\n").encode(), mode=0o644)
        print(f"wrote {model_files_seal(args.output)}: its seal ({spec.seal}, run {run.hex()}, frame {args.frame})")
    write_image(args.output, codes)
    print(f"wrote {args.output}: {'sealed ' if spec.is_sealed else ''}measurement {codes.shape} {codes.dtype}, "
          f"key {key.fingerprint}")


def scramble_command(args: argparse.Namespace) -> int:
    from edge.transform import AdcTransform

    key, spec, frame = _load(args)
    frame = spec.check_frame(frame, what=f"input '{args.input}'")
    _write_measurement(args, key, spec, AdcTransform(key, spec)(frame, epoch=args.epoch), frame)
    return 0


def unscramble_command(args: argparse.Namespace) -> int:
    from edge.transform import AdcTransform

    key, spec, measurement = _load(args)
    if spec.is_sealed:  # open the seal beside the measurement first: refused in one line unless it opens
        measurement = _opened(args, key, spec, measurement)
    restored = AdcTransform(key, spec).inverse(measurement, epoch=args.epoch)
    write_image(args.output, restored, private=True)
    print(f"warning: {args.output} holds a PLAIN (unscrambled) picture (mode 0600); protect or delete it",
          file=sys.stderr)
    print(f"wrote {args.output}: {restored.shape} {restored.dtype}, key {key.fingerprint}")
    return 0


def _opened(args: argparse.Namespace, key, spec, measurement):
    from edge.errors import ImageFileError
    from edge.frame import Frame
    from edge.seal import Opener, Seal

    try:
        text = model_files_seal(args.input).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise ImageFileError(f"'{model_files_seal(args.input)}' (the seal of '{args.input}') cannot be read; a sealed "
                             f"measurement opens only with its seal beside it") from None
    seal = Seal.from_hex(text)
    frame = Frame(measurement, seal.header.sequence, 0, str(args.input), measured=True, epoch=args.epoch,
                  fingerprint=key.fingerprint, seal=seal)
    return Opener(key, spec).open(frame).image


def firmware_sim_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from firmware_sim.readout import readout

    key, spec, frame = _load(args)
    frame = spec.check_frame(frame, what=f"input '{args.input}'")
    height, width, _ = frame.shape
    with tqdm(total=height * width, unit="px", desc="firmware-sim", disable=None, leave=False) as bar:
        measurement = readout(frame, key, spec, args.epoch, progress=bar.update)
    _write_measurement(args, key, spec, measurement, frame, reference=True)
    return 0


def golden_vectors_command(args: argparse.Namespace) -> int:
    from firmware_sim import vectors

    if args.write and args.path is not None:
        from edge.outputs import check_outputs

        check_outputs({"PATH": args.path}, {})
    argv = ["--write" if args.write else "--check"] + ([str(args.path)] if args.path else [])
    return vectors.main(argv)
