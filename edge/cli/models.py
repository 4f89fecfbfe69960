"""The model-making commands: ``keyify`` (compile a keyed twin) and ``quantize`` (int8, calibrated on
measurements); the commands that read models are in ``checks`` (``verify``, ``inspect``).

``keyify`` and ``quantize`` import the ``export`` package (and so ``onnx``) only when they run: the rest of
the command line, what a device uses, needs neither.
"""

from __future__ import annotations

import argparse
import sys
import time

from edge.cli.args import epoch, floats, path, positive, positive_float, positive_floats, size
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import FITS
from firmware_sim.words import IMAGE_SUFFIXES, TASKS, is_image, model_files


def _black(text: str) -> float:
    values = floats(text)
    if len(values) != 1 or values[0] < 0:
        raise argparse.ArgumentTypeError(f"black level {text!r} must be one finite number >= 0 (output codes)")
    return values[0]


def _pad(text: str) -> float:
    values = floats(text)
    if len(values) != 1 or not 0 <= values[0] <= 255:
        raise argparse.ArgumentTypeError(f"letterbox padding {text!r} must be one number in 0..255")
    return values[0]


def _gains(text: str) -> tuple[float, ...]:
    values = positive_floats(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"white-balance gains {text!r} must be 3 numbers R,G,B, e.g. 1.9,1,1.6")
    return values


def _ccm(text: str) -> tuple[float, ...]:
    values = floats(text)
    if len(values) != 9:
        raise argparse.ArgumentTypeError(f"colour matrix {text!r} has {len(values)} numbers; give 9, row by row")
    return values


def register(commands) -> None:
    _register_keyify(commands)
    _register_quantize(commands)


def _register_keyify(commands) -> None:
    keyify = commands.add_parser("keyify", help="compile a plain ONNX model into its keyed twin",
                                 description="compile a plain ONNX model into a keyed model that runs on measurements")
    keyify.add_argument("plain", type=path, metavar="PLAIN.onnx")
    keyify.add_argument("--key", required=True, type=path, metavar="KEYFILE")
    keyify.add_argument("-o", "--output", required=True, type=path, metavar="KEYED.onnx")
    keyify.add_argument("--size", type=size, default=None, metavar="HxW", help="frame size when the model's is dynamic")
    keyify.add_argument("--mean", type=floats, default=None, metavar="R,G,B",
                        help="per-channel mean, 0..255 scale (default: the model's metadata)")
    keyify.add_argument("--std", type=positive_floats, default=None, metavar="R,G,B",
                        help="per-channel std, 0..255 scale (default: the model's metadata)")
    keyify.add_argument("--normalize", choices=("none",), default=None,
                        help="none: feed the model the raw 0..255 values (without it, or --mean and --std, a model "
                             "whose metadata does not say how it is normalised is refused)")
    keyify.add_argument("--fit", choices=FITS, default=None,
                        help="how camera frames are brought to the model's size: crop (centre-crop, resize), "
                             "letterbox (scale to fit, pad), stretch (default: the model's metadata, else crop)")
    keyify.add_argument("--pad", type=_pad, default=None, metavar="N",
                        help="letterbox padding value, 0..255 scale (default: the model's metadata, else 114)")
    keyify.add_argument("--channel-order", choices=("rgb", "bgr"), default="rgb", help="the measurement's order")
    keyify.add_argument("--model-order", choices=("rgb", "bgr"), default=None,
                        help="the plain model's order (default: the model's metadata, else rgb)")
    keyify.add_argument("--spec", default=None, metavar="SPEC", help="readout spec: a preset or a TOML file (default: sealed, rgb8-sealed or gray8-sealed as the "
                        "model reads; rgb8 is the paper's unsealed readout)")
    keyify.add_argument("--layouts", choices=("boundary", "fresh"), default="boundary",
                        help="layout policy (default boundary; fresh: the paper's, every feature map scrambled)")
    keyify.add_argument("--split-after", default=None, type=_split_name, metavar="NAME",
                        help="node or tensor to split after")
    keyify.add_argument("--split-reveals-picture", action="store_true",
                        help="accept a split at or before the first spatial layer: the task server then sees the "
                             "picture (loud warning)")
    keyify.add_argument("--epoch", type=epoch, default=0, help="key epoch of the sensor layout (default 0)")
    keyify.add_argument("--labels", type=path, default=None, metavar="FILE",
                        help="class names, one per line in class-index order (default: the model's metadata)")
    keyify.add_argument("--task", choices=(*TASKS, "tensors"), default=None,
                        help="what the model does, for the device's decoder (default: the model's metadata; "
                             "tensors: no task, the outputs summarised)")
    keyify.add_argument("--int8", action="store_true", help="also write an int8 twin, KEYED.int8.onnx (needs "
                                                            "--calibration)")
    keyify.add_argument("--calibration", type=path, default=None, metavar="DIR",
                        help="--int8: calibration pictures or .npy sensor frames, like the camera's")
    keyify.add_argument("--force", action="store_true",
                        help="replace an existing KEYED.onnx and the files beside it (manifest, epochs, split, int8)")
    isp = keyify.add_argument_group("mini-ISP (Bayer specs: cells R, Gr, Gb, B -> the plain model's RGB)")
    isp.add_argument("--isp-black", type=_black, default=None, metavar="N", help="black level, output codes")
    isp.add_argument("--isp-wb", type=_gains, default=None, metavar="R,G,B", help="white-balance gains")
    isp.add_argument("--isp-ccm", type=_ccm, default=None, metavar="M11,...,M33", help="3x3 colour matrix, row-major")
    isp.add_argument("--isp-gamma", type=positive_float, default=None, metavar="G", help="gamma: values ** (1 / G)")
    isp.add_argument("--isp-white", type=positive_float, default=None, metavar="W",
                     help="level that becomes 255 (default: top output code - black)")
    keyify.set_defaults(handler=keyify_command, usage=keyify.error)


def _register_quantize(commands) -> None:
    quantize = commands.add_parser("quantize", help="quantise a keyed model to int8, calibrated on measurements",
                                   description="quantise a keyed model (and its feature and task models) to int8 "
                                               "with onnxruntime, calibrated on the measurements of DIR's frames")
    quantize.add_argument("keyed", type=path, metavar="KEYED.onnx")
    quantize.add_argument("--key", required=True, type=path, metavar="KEYFILE", help="to measure the frames")
    quantize.add_argument("--calibration", required=True, type=path, metavar="DIR",
                          help="calibration pictures or .npy sensor frames, like the camera's")
    quantize.add_argument("-o", "--output", required=True, type=path, metavar="KEYED.int8.onnx")
    quantize.add_argument("--plain", type=path, default=None, metavar="PLAIN.onnx",
                          help="the plain model it was compiled from: int8 outputs then equal the plain int8 "
                               "model's bit for bit")
    quantize.add_argument("--limit", type=positive, default=None, help="calibrate on the first N frames only")
    quantize.add_argument("--force", action="store_true",
                          help="replace an existing KEYED.int8.onnx and the files beside it")
    quantize.set_defaults(handler=quantize_command)


def keyify_command(args: argparse.Namespace) -> int:
    from export.keyify import keyify  # the compiler needs onnx; the device does not
    from export.package.save import family, refuse_existing, remove_stale, save, stored_size
    from edge.outputs import check_outputs, sidecars

    if args.int8 != (args.calibration is not None):
        args.usage("--int8 needs --calibration DIR" if args.int8 else "--calibration DIR goes with --int8")
    if args.normalize == "none" and (args.mean is not None or args.std is not None):
        args.usage("--normalize none feeds the raw 0..255 values; leave out --mean and --std, or --normalize")
    if args.pad is not None and args.fit not in (None, "letterbox"):
        args.usage(f"--pad is the letterbox's padding; --fit {args.fit} does not pad")
    out = args.output
    siblings = {"-o": out, **sidecars("-o", out)}  # every file of the family: written, or removed as stale
    int8 = model_files(out).int8
    if args.int8:
        siblings |= _int8_outputs(int8)
    check_outputs(siblings, {"PLAIN.onnx": args.plain, "--key": args.key, "--spec": args.spec,
                             "--calibration": args.calibration, "--labels": args.labels})
    replaced = family(out) + (family(int8) if args.int8 else [])
    if not args.force:
        refuse_existing(replaced)  # before any compile: an earlier model is never overwritten silently
    if args.int8:
        _calibration_files(args.calibration)  # a missing or empty folder is refused before compiling
    key = MasterKey.load(args.key)
    options = _keyify_options(args)
    if args.split_reveals_picture:
        print("keycam keyify: WARNING: --split-reveals-picture: a split at or before the first spatial layer gives "
              "the task server the picture itself", file=sys.stderr)
    start = time.perf_counter()
    result = keyify(args.plain, key, options)
    seconds = time.perf_counter() - start
    _check_task(result, args)
    calibration = _calibration(args.calibration, result.manifest, key) if args.int8 else None
    written = save(result, args.output)
    plain_size = stored_size(args.plain)
    print(f"keyed {args.plain} for {key.fingerprint} ({args.layouts} layouts; readout: "
          f"{result.manifest.spec.describe()}) in {seconds:.2f} s; "
          f"{result.stats['plain_nodes']} plain nodes -> {result.stats['keyed_nodes']} keyed nodes")
    for written_path in written:
        note = f" ({stored_size(written_path) / plain_size:.2f}x the plain model)" \
            if written_path.suffix == ".onnx" else ""
        print(f"wrote {written_path}{note}")
    if calibration is not None:
        written += _quantize(out, int8, calibration, args.plain)
    for stale in remove_stale(replaced, written):
        print(f"removed {stale} (an earlier model's)")
    if not args.int8 and int8.exists():
        print(f"note: {int8} is an earlier model's int8 twin; run `keycam quantize` again or delete it")
    return 0


def _split_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name; give the node or tensor to split after (or no --split-after)")
    return text


def _keyify_options(args: argparse.Namespace):
    from export.keyify import IspOptions, KeyifyOptions
    from firmware_sim.spec_files import load_spec

    isp = None
    given = {"black_level": args.isp_black, "wb_gains": args.isp_wb, "ccm": args.isp_ccm, "gamma": args.isp_gamma,
             "white": args.isp_white}
    if any(value is not None for value in given.values()):
        isp = IspOptions(**{name: value for name, value in given.items() if value is not None})
    return KeyifyOptions(
        size=args.size, mean=args.mean, std=args.std, channel_order=args.channel_order,
        model_order=args.model_order, spec=load_spec(args.spec) if args.spec is not None else None, policy=args.layouts,
        split_after=args.split_after, epoch=args.epoch, isp=isp, labels=args.labels,
        split_reveals_picture=args.split_reveals_picture,
        task="" if args.task == "tensors" else args.task, fit=args.fit, pad=args.pad,
        normalize=args.normalize or "metadata",  # a model that says nothing is refused, naming the flags
    )


def _check_task(result, args: argparse.Namespace) -> None:
    """Refuse now, in one line, what `keycam run` would refuse: a decoder of the final manifest's task must take
    the model's outputs (``edge.tasks.make_decoder``: the default ``[task]``, else one naming a decoder of that
    task), and a task the metadata names must be one keycam decodes."""
    from edge.errors import ConfigError
    from edge.tasks import DECODERS, TaskConfig, make_decoder
    from firmware_sim.manifest import shape_text

    fitted = result.manifest.input
    if args.pad is not None and fitted.fit != "letterbox":
        raise ConfigError(f"--pad {args.pad:g} would not be used: this model's frames are fitted by {fitted.fit} "
                          f"({fitted.sources.get('fit', 'default')}); add --fit letterbox, or leave out --pad")
    final = result.task_manifest if result.feature is not None else result.manifest
    said = {p.key: p.value for p in result.model.metadata_props}.get("task", "").strip()
    if args.task is None and said and said not in TASKS:
        raise ConfigError(f"'{args.plain}' is a {said!r} model (its metadata's task), and keycam decodes "
                          f"{', '.join(TASKS)}; pass --task tensors to keep its outputs as tensors")
    try:
        make_decoder(TaskConfig(), final)
        return
    except ConfigError as error:
        refusal = str(error).rstrip(".")
    family = [name for name, decoder in DECODERS.items() if decoder.task == (final.task or "tensors")]
    for name in family:
        try:
            make_decoder(TaskConfig(decoder=name), final)
        except ConfigError:
            continue
        print(f"note: `keycam run` needs [task] decoder = \"{name}\" for this model ({refusal})")
        return
    if len(family) > 1:
        shapes = ", ".join(shape_text(o.shape) for o in final.outputs)
        refusal = f"none of the {final.task} decoders ({', '.join(family)}) reads its outputs ({shapes})"
    where = f"--task {args.task}" if args.task else f"its metadata's task {final.task!r}"
    fix = "choose another --task" if args.task else "pass --task to say what its outputs are"
    raise ConfigError(f"keycam run would refuse this model ({where}): {refusal}; {fix}, or --task tensors to keep "
                      f"them as tensors")


def _int8_outputs(int8, name="the int8 model"):
    from edge.outputs import sidecars

    return {name: int8, **sidecars(name, int8)}


def _calibration_files(folder) -> list:
    from edge.errors import ImageFileError

    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ImageFileError(f"calibration folder '{folder}' {what}; give a folder of pictures or .npy sensor frames")
    files = sorted(p for p in folder.iterdir() if is_image(p) and p.is_file())
    if not files:
        raise ImageFileError(f"calibration folder '{folder}' holds no pictures or .npy frames "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))}); put frames like the camera's in it")
    return files


def _calibration(folder, manifest, key, limit=None):
    """The measurements of the folder's frames, read out as the device reads them, and what they are."""
    import numpy as np

    from edge.errors import ImageFileError
    from edge.imageio import read_frame
    from edge.lab.verify import prepare_frame
    from edge.sensor import Readout

    spec = manifest.spec
    _, height, width, _ = manifest.input.shape
    cells = 2 if spec.is_bayer else 1  # a Bayer sensor's frame is a (2H, 2W) mosaic
    sensor = (cells * height, cells * width, 1 if spec.is_bayer else spec.channels)
    reads = f"{np.dtype(spec.input_dtype).name} frames {sensor[0]}x{sensor[1]}x{sensor[2]} ({spec.describe()})"
    readout = Readout.for_model(manifest, key)
    measured = []
    for file in _calibration_files(folder)[:limit]:
        frame = read_frame(file)
        held = f"{frame.dtype.name} {frame.shape[0]}x{frame.shape[1]}x{frame.shape[2]}"
        if file.suffix.lower() == ".npy":
            if frame.dtype != spec.input_dtype or frame.shape != sensor:
                raise ImageFileError(f"calibration frame '{file}' holds {held} codes; the model reads {reads}: give "
                                     f"sensor frames of that spec and size, or pictures")
        elif spec.output_bits != 8 or frame.dtype != np.uint8:
            raise ImageFileError(f"calibration picture '{file}' holds {held} values; the model reads {reads}: give "
                                 f"8-bit pictures for an 8-bit spec, .npy sensor frames otherwise")
        elif frame.shape[0] < sensor[0] or frame.shape[1] < sensor[1]:
            raise ImageFileError(f"calibration picture '{file}' is {frame.shape[0]}x{frame.shape[1]}, smaller than "
                                 f"the model's {sensor[0]}x{sensor[1]} frames; give pictures at least that large")
        measured.append(readout.measure(prepare_frame(frame, readout, file), manifest.epoch))
    note = (f"{len(measured)} frames of '{folder.name}', measured as the device does ({spec.describe()}, "
            f"key epoch {manifest.epoch})")
    return np.stack(measured), note


def _quantize(keyed, output, calibration, plain) -> list:
    from export.package.save import stored_size
    from export.quantize import quantize_file

    measured, note = calibration
    start = time.perf_counter()
    result = quantize_file(keyed, measured, output, calibration=note, plain=plain)
    seconds = time.perf_counter() - start
    hint = "" if plain else " (--plain PLAIN.onnx: outputs equal to the plain int8 model's, bit for bit)"
    print(f"quantised {keyed} to int8 on {result.frames} calibration frames in {seconds:.2f} s; "
          f"{result.notes.get('full') or result.notes.get('feature')}{hint}")
    size = stored_size(keyed)
    for written_path in result.written:
        note = f" ({stored_size(written_path) / size:.2f}x the float keyed model)" \
            if written_path.suffix == ".onnx" else ""
        print(f"wrote {written_path}{note}")
    return result.written


def quantize_command(args: argparse.Namespace) -> int:
    from edge.outputs import check_outputs
    from edge.runtime import KeyedModel
    from export.package.save import family, refuse_existing, remove_stale

    inputs = {"KEYED.onnx": args.keyed, "--key": args.key, "--plain": args.plain, "--calibration": args.calibration}
    check_outputs(_int8_outputs(args.output, "-o"), inputs)
    if not args.force:
        refuse_existing(family(args.output))
    key = MasterKey.load(args.key)
    manifest = KeyedModel(args.keyed, key).manifest
    written = _quantize(args.keyed, args.output, _calibration(args.calibration, manifest, key, args.limit), args.plain)
    for stale in remove_stale(family(args.output), written):
        print(f"removed {stale} (an earlier model's)")
    return 0
