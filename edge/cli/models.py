"""The model commands: ``keyify`` (compile a keyed twin), ``verify`` (against the plain model) and ``inspect``.

``keyify`` imports the ``export`` package (and so ``onnx``) only when it runs: the rest of the command
line, what a device uses, needs neither.
"""

from __future__ import annotations

import argparse
import time

from edge.cli.args import epoch, floats, path, positive, positive_float, positive_floats, size
from firmware_sim.keys import MasterKey

EXIT_ERROR = 1


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
    keyify.add_argument("--layouts", choices=("fresh", "boundary"), default="fresh", help="layout policy")
    keyify.add_argument("--split-after", default=None, metavar="NAME", help="node or tensor to split after")
    keyify.add_argument("--epoch", type=epoch, default=0, help="key epoch of the sensor layout (default 0)")
    isp = keyify.add_argument_group("mini-ISP (Bayer specs: cells R, Gr, Gb, B -> the plain model's RGB)")
    isp.add_argument("--isp-black", type=_black, default=None, metavar="N", help="black level, output codes")
    isp.add_argument("--isp-wb", type=_gains, default=None, metavar="R,G,B", help="white-balance gains")
    isp.add_argument("--isp-ccm", type=_ccm, default=None, metavar="M11,...,M33", help="3x3 colour matrix, row-major")
    isp.add_argument("--isp-gamma", type=positive_float, default=None, metavar="G", help="gamma: values ** (1 / G)")
    isp.add_argument("--isp-white", type=positive_float, default=None, metavar="W",
                     help="level that becomes 255 (default: top output code - black)")
    keyify.set_defaults(handler=keyify_command)

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

    out = args.output
    siblings = {"-o": out, "its feature model": out.with_name(out.stem + ".feature.onnx"),
                "its task model": out.with_name(out.stem + ".task.onnx")}
    check_outputs(siblings, {"PLAIN.onnx": args.plain, "--key": args.key, "--spec": args.spec})
    key = MasterKey.load(args.key)
    isp = None
    given = {"black_level": args.isp_black, "wb_gains": args.isp_wb, "ccm": args.isp_ccm, "gamma": args.isp_gamma,
             "white": args.isp_white}
    if any(value is not None for value in given.values()):
        isp = IspOptions(**{name: value for name, value in given.items() if value is not None})
    options = KeyifyOptions(
        size=args.size, mean=args.mean, std=args.std, channel_order=args.channel_order,
        model_order=args.model_order, spec=load_spec(args.spec), policy=args.layouts,
        split_after=args.split_after, epoch=args.epoch, isp=isp,
    )
    start = time.perf_counter()
    result = keyify(args.plain, key, options)
    seconds = time.perf_counter() - start
    written = save(result, args.output)
    plain_size = args.plain.stat().st_size
    print(f"keyed {args.plain} for {key.fingerprint} ({args.layouts} layouts) in {seconds:.2f} s; "
          f"{result.stats['plain_nodes']} plain nodes -> {result.stats['keyed_nodes']} keyed nodes")
    for written_path in written:
        note = f" ({written_path.stat().st_size / plain_size:.2f}x the plain model)" \
            if written_path.suffix == ".onnx" else ""
        print(f"wrote {written_path}{note}")
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
    print("manifest:")
    print(manifest.to_json())
    return 0
