"""The model commands: ``keyify`` (compile a keyed twin), ``quantize`` (int8, calibrated on measurements),
``verify`` (against the plain model) and ``inspect``.

``keyify`` and ``quantize`` import the ``export`` package (and so ``onnx``) only when they run: the rest of
the command line, what a device uses, needs neither.
"""

from __future__ import annotations

import argparse
import time

from edge.cli.args import EXIT_ERROR, epoch, floats, path, positive, positive_float, positive_floats, size
from firmware_sim.keys import MasterKey
from firmware_sim.words import IMAGE_SUFFIXES, TASKS, is_image, model_files


def _black(text: str) -> float:
    values = floats(text)
    if len(values) != 1 or values[0] < 0:
        raise argparse.ArgumentTypeError(f"black level {text!r} must be one finite number >= 0 (output codes)")
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
    keyify = commands.add_parser("keyify", help="compile a plain ONNX model into its keyed twin",
                                 description="compile a plain ONNX model into a keyed model that runs on measurements")
    keyify.add_argument("plain", type=path, metavar="PLAIN.onnx")
    keyify.add_argument("--key", required=True, type=path, metavar="KEYFILE")
    keyify.add_argument("-o", "--output", required=True, type=path, metavar="KEYED.onnx")
    keyify.add_argument("--size", type=size, default=None, metavar="HxW", help="frame size when the model's is dynamic")
    keyify.add_argument("--mean", type=floats, default=None, metavar="R,G,B", help="per-channel mean, 0..255 scale")
    keyify.add_argument("--std", type=positive_floats, default=None, metavar="R,G,B",
                        help="per-channel std, 0..255 scale")
    keyify.add_argument("--channel-order", choices=("rgb", "bgr"), default="rgb", help="the measurement's order")
    keyify.add_argument("--model-order", choices=("rgb", "bgr"), default="rgb", help="the plain model's order")
    keyify.add_argument("--spec", default=None, metavar="SPEC", help="readout spec (fixes the input dtype)")
    keyify.add_argument("--layouts", choices=("boundary", "fresh"), default="boundary",
                        help="layout policy (default boundary; fresh: the paper's, every feature map scrambled)")
    keyify.add_argument("--split-after", default=None, metavar="NAME", help="node or tensor to split after")
    keyify.add_argument("--epoch", type=epoch, default=0, help="key epoch of the sensor layout (default 0)")
    keyify.add_argument("--labels", type=path, default=None, metavar="FILE",
                        help="class names, one per line in class-index order (default: the model's metadata)")
    keyify.add_argument("--task", choices=TASKS, default=None,
                        help="what the model does, for the device's decoder (default: the model's metadata)")
    keyify.add_argument("--int8", action="store_true", help="also write an int8 twin, KEYED.int8.onnx (needs "
                                                            "--calibration)")
    keyify.add_argument("--calibration", type=path, default=None, metavar="DIR",
                        help="--int8: calibration pictures or .npy sensor frames, like the camera's")
    isp = keyify.add_argument_group("mini-ISP (Bayer specs: cells R, Gr, Gb, B -> the plain model's RGB)")
    isp.add_argument("--isp-black", type=_black, default=None, metavar="N", help="black level, output codes")
    isp.add_argument("--isp-wb", type=_gains, default=None, metavar="R,G,B", help="white-balance gains")
    isp.add_argument("--isp-ccm", type=_ccm, default=None, metavar="M11,...,M33", help="3x3 colour matrix, row-major")
    isp.add_argument("--isp-gamma", type=positive_float, default=None, metavar="G", help="gamma: values ** (1 / G)")
    isp.add_argument("--isp-white", type=positive_float, default=None, metavar="W",
                     help="level that becomes 255 (default: top output code - black)")
    keyify.set_defaults(handler=keyify_command, usage=keyify.error)

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
    quantize.set_defaults(handler=quantize_command)

    verify = commands.add_parser("verify", help="compare a keyed model with its plain model on images")
    verify.add_argument("plain", type=path, metavar="PLAIN.onnx")
    verify.add_argument("keyed", type=path, metavar="KEYED.onnx")
    verify.add_argument("--key", required=True, type=path, metavar="KEYFILE")
    verify.add_argument("--images", required=True, type=path, metavar="DIR")
    verify.add_argument("--limit", type=positive, default=None, help="use the first N images only")
    verify.set_defaults(handler=verify_command)

    inspect = commands.add_parser("inspect", help="print a model's manifest and key fingerprint")
    inspect.add_argument("model", type=path, metavar="MODEL.onnx")
    inspect.set_defaults(handler=inspect_command)


def keyify_command(args: argparse.Namespace) -> int:
    from export.keyify import IspOptions, KeyifyOptions, keyify  # the compiler needs onnx; the device does not
    from export.package.save import save
    from edge.outputs import check_outputs
    from firmware_sim.spec import load_spec

    if args.int8 != (args.calibration is not None):
        args.usage("--int8 needs --calibration DIR" if args.int8 else "--calibration DIR goes with --int8")
    out = args.output
    siblings = {"-o": out, "its feature model": model_files(out).feature, "its task model": model_files(out).task}
    int8 = model_files(out).int8
    if args.int8:
        siblings |= _int8_outputs(int8)
    check_outputs(siblings, {"PLAIN.onnx": args.plain, "--key": args.key, "--spec": args.spec,
                             "--calibration": args.calibration})
    if args.int8:
        _calibration_files(args.calibration)  # a missing or empty folder is refused before compiling
    key = MasterKey.load(args.key)
    isp = None
    given = {"black_level": args.isp_black, "wb_gains": args.isp_wb, "ccm": args.isp_ccm, "gamma": args.isp_gamma,
             "white": args.isp_white}
    if any(value is not None for value in given.values()):
        isp = IspOptions(**{name: value for name, value in given.items() if value is not None})
    options = KeyifyOptions(
        size=args.size, mean=args.mean, std=args.std, channel_order=args.channel_order,
        model_order=args.model_order, spec=load_spec(args.spec), policy=args.layouts,
        split_after=args.split_after, epoch=args.epoch, isp=isp, labels=args.labels, task=args.task,
    )
    start = time.perf_counter()
    result = keyify(args.plain, key, options)
    seconds = time.perf_counter() - start
    calibration = _calibration(args.calibration, result.manifest, key) if args.int8 else None
    written = save(result, args.output)
    plain_size = args.plain.stat().st_size
    print(f"keyed {args.plain} for {key.fingerprint} ({args.layouts} layouts) in {seconds:.2f} s; "
          f"{result.stats['plain_nodes']} plain nodes -> {result.stats['keyed_nodes']} keyed nodes")
    for written_path in written:
        note = f" ({written_path.stat().st_size / plain_size:.2f}x the plain model)" \
            if written_path.suffix == ".onnx" else ""
        print(f"wrote {written_path}{note}")
    if calibration is not None:
        _quantize(out, int8, calibration, args.plain)
    return 0


def _int8_outputs(int8, name="the int8 model"):
    return {name: int8, "its int8 feature model": model_files(int8).feature,
            "its int8 task model": model_files(int8).task}


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


def _quantize(keyed, output, calibration, plain) -> None:
    from export.quantize import quantize_file

    measured, note = calibration
    start = time.perf_counter()
    result = quantize_file(keyed, measured, output, calibration=note, plain=plain)
    seconds = time.perf_counter() - start
    hint = "" if plain else " (--plain PLAIN.onnx: outputs equal to the plain int8 model's, bit for bit)"
    print(f"quantised {keyed} to int8 on {result.frames} calibration frames in {seconds:.2f} s; "
          f"{result.notes.get('full') or result.notes.get('feature')}{hint}")
    size = keyed.stat().st_size
    for written_path in result.written:
        note = f" ({written_path.stat().st_size / size:.2f}x the float keyed model)" \
            if written_path.suffix == ".onnx" else ""
        print(f"wrote {written_path}{note}")


def quantize_command(args: argparse.Namespace) -> int:
    from edge.outputs import check_outputs
    from edge.runtime import KeyedModel

    inputs = {"KEYED.onnx": args.keyed, "--key": args.key, "--plain": args.plain, "--calibration": args.calibration}
    check_outputs(_int8_outputs(args.output, "-o"), inputs)
    key = MasterKey.load(args.key)
    manifest = KeyedModel(args.keyed, key).manifest
    _quantize(args.keyed, args.output, _calibration(args.calibration, manifest, key, args.limit), args.plain)
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from edge.lab.verify import list_images, verify

    key = MasterKey.load(args.key)
    images = list_images(args.images)[: args.limit]
    report = verify(args.plain, args.keyed, key, images)
    print(f"images        {report.images}")
    print(f"max abs diff  {report.max_abs_diff:.3g}")
    print(f"max rel diff  {report.max_rel_diff:.3g}")
    print(f"top-1 agree   {report.agreement * 100:.2f} %")
    print("verdict       " + ("exact" if report.exact else "NOT EXACT"))
    return 0 if report.exact else EXIT_ERROR


def inspect_command(args: argparse.Namespace) -> int:
    from edge.runtime import open_session, read_manifest

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
    quantised = manifest.quantization
    print("quant   " + (f"{quantised.format}, weights {quantised.weights}, activations {quantised.activations}; "
                         f"{quantised.method} on {quantised.calibration}; {quantised.tool}" if quantised
                         else "none (float32)"))
    print("manifest:")
    print(manifest.to_json())
    return 0
