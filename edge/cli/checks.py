"""The commands that read models and say what they are: ``verify`` (a keyed model against its plain model) and
``inspect`` (a model's manifest: key, layouts, spec, preprocessing and where each value came from)."""

from __future__ import annotations

import argparse

from edge.cli.args import EXIT_ERROR, path, positive
from firmware_sim.keys import MasterKey


def register(commands) -> None:
    _register_verify(commands)
    inspect = commands.add_parser("inspect", help="print a model's manifest and key fingerprint")
    inspect.add_argument("model", type=path, metavar="MODEL.onnx")
    inspect.set_defaults(handler=inspect_command)


def _register_verify(commands) -> None:
    verify = commands.add_parser(
        "verify", help="compare a keyed model with its plain model on images: raw outputs and decoded answers",
        description="compare a keyed model with the plain model it was compiled from, on pictures prepared as the "
                    "device prepares camera frames: every raw output (dense ones put back in order with the key) to "
                    "1e-4 of its range, then the decoded answers (the manifest's task or --config's [task]; "
                    "detections as sets, matched by class and box); 'exact' only when both agree. A plain model "
                    "that is not the keyed model's (other input, outputs or sha256) is refused. Exit 0 when exact, "
                    "1 otherwise")
    verify.add_argument("plain", type=path, metavar="PLAIN.onnx", help="the model keyify was given")
    verify.add_argument("keyed", type=path, metavar="KEYED.onnx", help="its keyed twin (a full model, not a split's)")
    verify.add_argument("--key", required=True, type=path, metavar="KEYFILE", help="the key it was keyed for")
    verify.add_argument("--images", required=True, type=path, metavar="DIR",
                        help="pictures, or .npy sensor frames (those only, for specs deeper than 8 bits)")
    verify.add_argument("--limit", type=positive, default=None, metavar="N", help="use the first N images only")
    verify.add_argument("--batch", type=positive, default=None, metavar="N",
                        help="frames per run of a dynamic-batch model (default 8; a fixed-batch model takes its own)")
    verify.add_argument("--config", type=path, default=None, metavar="FILE",
                        help="decode the answers with this configuration's [task] and frame pictures by its [model] "
                             "fit (default: the model's task, default thresholds, the model's framing)")
    verify.set_defaults(handler=verify_command)


def verify_command(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.lab.verify import list_images, verify

    key = MasterKey.load(args.key)
    config = load_config(args.config) if args.config is not None else None
    images = list_images(args.images)[: args.limit]
    report = verify(args.plain, args.keyed, key, images, batch=args.batch, settings=config and config.task,
                    fit=config and config.model.fit_override)
    for column, text in report.lines():
        print(f"{column:<13} {text}")
    return 0 if report.exact else EXIT_ERROR


def inspect_command(args: argparse.Namespace) -> int:
    from edge.errors import ModelError
    from edge.runtime import open_session, read_manifest
    from firmware_sim.files import check_regular

    check_regular(args.model, "model", ModelError)  # a folder or a FIFO is named as such (a FIFO would hang)
    session = open_session(args.model, optimisation="disable")
    manifest = read_manifest(session, str(args.model))
    for value in session.get_inputs():
        print(f"input   {value.name} {value.type} {value.shape}")
    for value in session.get_outputs():
        print(f"output  {value.name} {value.type} {value.shape}")
    if manifest is None:
        print("not a keyed model (no keycam manifest)")
        return 0
    print(f"key     {manifest.key_fingerprint}")
    print(f"role    {manifest.role}, {manifest.policy} layouts, epoch {manifest.epoch}")
    print(f"spec    {manifest.spec.describe()}")
    _print_preprocessing(manifest.input)
    quantised = manifest.quantization
    print("quant   " + (f"{quantised.format}, weights {quantised.weights}, activations {quantised.activations}; "
                         f"{quantised.method} on {quantised.calibration}; {quantised.tool}" if quantised
                         else "none (float32)"))
    _print_key_equivalence(args.model, manifest)
    print("manifest:")
    print(manifest.to_json())
    return 0


def _print_key_equivalence(path, manifest) -> None:
    """Which of the model's files reveal what, under its spec: a keyed model (or its recipes) gives the sensor's
    readout order; under the paper's readout that is the key to every measurement, under a sealed spec it is the
    order only (the measurements stay sealed without the key)."""
    from firmware_sim.words import model_files

    files = model_files(path)
    sealed = manifest.spec.is_sealed
    reveals = ("the readout order only: measurements stay sealed without the key" if sealed
               else "the readout order, which unscrambles every measurement of this key epoch: KEY-EQUIVALENT")
    if manifest.role == "task":
        print("secrecy a task model holds no sensor table: it does not reveal the readout order")
    else:
        print(f"secrecy {path} reveals {reveals}; keep it like the key (mode 0600)")
    if manifest.epoch_rotation and manifest.sensor_tables:
        print(f"secrecy {files.epochs} (its epoch recipes) reveals the same for every key epoch; mode 0600")
    print(f"secrecy {files.manifest} holds no key material (layout coordinates only)")


def _print_preprocessing(spec) -> None:
    """How the model wants its pixels, each value with where it came from (the manifest's ``sources``)."""
    def line(label: str, value: str, *fields: str) -> None:
        said = [spec.sources[f] for f in fields if f in spec.sources]
        print(f"{label:<8}{value}  [{'; '.join(dict.fromkeys(said)) or 'not recorded'}]")

    def numbers(values) -> str:
        return ",".join(f"{v:g}" for v in values)

    letterbox = spec.fit == "letterbox"
    line("fit", f"letterbox, pad {spec.pad:g}" if letterbox else spec.fit, "fit", *(["pad"] if letterbox else []))
    line("mean", f"{numbers(spec.mean)} (0..255 scale)", "mean")
    line("std", f"{numbers(spec.std)} (0..255 scale)", "std")
    line("order", f"model {spec.model_channel_order}, measurement {spec.channel_order}", "model_order",
         "model_channel_order")
