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
    keycam keyify PLAIN.onnx --key KEYFILE -o KEYED.onnx [--size HxW] [--mean R,G,B] [--std R,G,B]
                  [--channel-order rgb|bgr] [--model-order rgb|bgr] [--spec SPEC]
                  [--layouts fresh|boundary] [--split-after NAME] [--epoch E]
    keycam verify PLAIN.onnx KEYED.onnx --key KEYFILE --images DIR [--limit N]
    keycam inspect MODEL.onnx
    keycam demo [--out DIR] [--image PATH] [--key KEYFILE]
    keycam serve --model-repository DIR [--host H] [--port N] [--token-file FILE] [--max-body-mb M]
    keycam export triton MODEL.onnx --name NAME --repository DIR [--version V] [--max-batch-size B]

``keyify`` and ``export`` import the ``export`` package (and so ``onnx``) only when it runs: the rest of the
command line, what a device uses, needs neither.
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


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW, e.g. 224x224") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return height, width


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


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

    keyify = commands.add_parser("keyify", help="compile a plain ONNX model into its keyed twin",
                                 description="compile a plain ONNX model into a keyed model that runs on measurements")
    keyify.add_argument("plain", type=Path, metavar="PLAIN.onnx")
    keyify.add_argument("--key", required=True, type=Path, metavar="KEYFILE")
    keyify.add_argument("-o", "--output", required=True, type=Path, metavar="KEYED.onnx")
    keyify.add_argument("--size", type=_size, default=None, metavar="HxW", help="frame size when the model's is dynamic")
    keyify.add_argument("--mean", type=_floats, default=None, metavar="R,G,B", help="per-channel mean, 0..255 scale")
    keyify.add_argument("--std", type=_floats, default=None, metavar="R,G,B", help="per-channel std, 0..255 scale")
    keyify.add_argument("--channel-order", choices=("rgb", "bgr"), default="rgb", help="the measurement's order")
    keyify.add_argument("--model-order", choices=("rgb", "bgr"), default="rgb", help="the plain model's order")
    keyify.add_argument("--spec", default=None, metavar="SPEC", help="readout spec (fixes the input dtype)")
    keyify.add_argument("--layouts", choices=("fresh", "boundary"), default="fresh", help="layout policy")
    keyify.add_argument("--split-after", default=None, metavar="NAME", help="node or tensor to split after")
    keyify.add_argument("--epoch", type=_epoch, default=0, help="key epoch of the sensor layout (default 0)")
    keyify.set_defaults(handler=_keyify)

    verify = commands.add_parser("verify", help="compare a keyed model with its plain model on images")
    verify.add_argument("plain", type=Path, metavar="PLAIN.onnx")
    verify.add_argument("keyed", type=Path, metavar="KEYED.onnx")
    verify.add_argument("--key", required=True, type=Path, metavar="KEYFILE")
    verify.add_argument("--images", required=True, type=Path, metavar="DIR")
    verify.add_argument("--limit", type=int, default=None, help="use the first N images only")
    verify.set_defaults(handler=_verify)

    inspect = commands.add_parser("inspect", help="print a model's manifest and key fingerprint")
    inspect.add_argument("model", type=Path, metavar="MODEL.onnx")
    inspect.set_defaults(handler=_inspect)

    run = commands.add_parser("run", help="run the capture loop (no configuration: the embedded default job)")
    run.add_argument("--config", type=Path, default=None, metavar="FILE", help="configuration file (TOML)")
    run.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    run.set_defaults(handler=_run)

    replay = commands.add_parser("replay", help="replay a recording, a video or an image folder, deterministically")
    replay.add_argument("source", type=Path, metavar="SOURCE", help="a .mcap recording, a video file or a folder")
    replay.add_argument("--config", type=Path, default=None, metavar="FILE")
    replay.add_argument("--model", type=Path, default=None, metavar="KEYED.onnx")
    replay.add_argument("--key", type=Path, default=None, metavar="KEYFILE")
    replay.add_argument("--output", default="-", metavar="RESULTS.jsonl", help="results (default: standard output)")
    replay.add_argument("--record", type=Path, default=None, metavar="OUT.mcap", help="also record the measurements")
    replay.add_argument("--realtime", action="store_true", help="at recorded speed instead of as fast as possible")
    replay.set_defaults(handler=_replay)

    record = commands.add_parser("record", help="run the capture loop and record the measurements (MCAP)")
    record.add_argument("output", type=Path, metavar="OUT.mcap")
    record.add_argument("--config", type=Path, default=None, metavar="FILE")
    record.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    record.add_argument("--plain-debug", action="store_true",
                        help="DEBUG ONLY: also record the plain frames (anyone with the file sees the scene)")
    record.set_defaults(handler=_record)

    preview = commands.add_parser("preview", help="key holders: PNG of plain | measurement | unscrambled | answer")
    preview.add_argument("source", type=Path, nargs="?", default=None, metavar="SOURCE",
                         help="a recording, video or folder (default: the configured or default source)")
    preview.add_argument("-o", "--output", type=Path, required=True, metavar="PREVIEW.png")
    preview.add_argument("--config", type=Path, default=None, metavar="FILE")
    preview.add_argument("--model", type=Path, default=None, metavar="KEYED.onnx")
    preview.add_argument("--key", type=Path, default=None, metavar="KEYFILE")
    preview.add_argument("--frames", type=int, default=4, help="rows in the strip (default 4)")
    preview.set_defaults(handler=_preview)

    validate = commands.add_parser("validate-config", help="check a configuration file")
    validate.add_argument("config", type=Path, metavar="FILE")
    validate.set_defaults(handler=_validate_config)

    evaluate = commands.add_parser("eval", help="evaluations: `keycam eval privacy` prints the paper's table")
    kinds = evaluate.add_subparsers(dest="evaluation", required=True, metavar="EVALUATION")
    privacy = kinds.add_parser("privacy", help="plain/scrambled/keyed/wrong-key accuracy of a plain classifier")
    privacy.add_argument("--model", required=True, type=Path, metavar="PLAIN.onnx")
    privacy.add_argument("--data", required=True, type=Path, metavar="DIR",
                         help="labelled images (label after the last underscore) or IDX files")
    privacy.add_argument("--mean", type=_floats, default=None, metavar="R,G,B")
    privacy.add_argument("--std", type=_floats, default=None, metavar="R,G,B")
    privacy.add_argument("--key", type=Path, default=None, metavar="KEYFILE", help="default: a fresh key, not saved")
    privacy.add_argument("--layouts", choices=("fresh", "boundary"), default="fresh")
    privacy.add_argument("--model-order", choices=("rgb", "bgr"), default="rgb", help="the plain model's order")
    privacy.add_argument("--wrong-keys", type=int, default=5, help="how many wrong keys to try (default 5)")
    privacy.add_argument("--limit", type=int, default=None, help="use the first N images only")
    privacy.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                         help="add the row 'plain model fine-tuned on scrambled images' (N epochs; needs PyTorch)")
    privacy.add_argument("--finetune-data", type=Path, default=None, metavar="DIR",
                         help="labelled training images for fine-tuning (default: the train-* IDX files in --data)")
    privacy.add_argument("--finetune-limit", type=int, default=None, metavar="N",
                         help="fine-tune on the first N training images only")
    privacy.set_defaults(handler=_eval_privacy)

    serve = commands.add_parser("serve", help="serve a model repository over the Open Inference Protocol (KServe v2)")
    serve.add_argument("--model-repository", required=True, type=Path, metavar="DIR",
                       help="Triton-layout repository: DIR/NAME/V/model.onnx (see `keycam export triton`)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                       help="require 'Authorization: Bearer TOKEN' (the token in FILE, mode 0600) except for health")
    serve.add_argument("--max-body-mb", type=float, default=64, help="largest request body, MiB (default 64)")
    serve.add_argument("--threads", type=int, default=0, help="onnxruntime threads per model (0: its default)")
    serve.add_argument("--concurrency", type=int, default=1, help="runs of one model at once (default 1)")
    serve.add_argument("--max-batch", type=int, default=8,
                       help="batch up to N frames of requests waiting for a busy model (default 8; 1: never)")
    serve.set_defaults(handler=_serve)

    exporter = commands.add_parser("export", help="package models for servers: `keycam export triton`")
    targets = exporter.add_subparsers(dest="target", required=True, metavar="TARGET")
    triton = targets.add_parser("triton", help="add a model to a Triton model repository (also `keycam serve`'s)")
    triton.add_argument("model", type=Path, metavar="MODEL.onnx", help="a keyed, task or plain ONNX model")
    triton.add_argument("--name", required=True, help="model name in the repository")
    triton.add_argument("--repository", required=True, type=Path, metavar="DIR")
    triton.add_argument("--version", type=int, default=None, help="version folder (default: the next free one)")
    triton.add_argument("--max-batch-size", type=int, default=8, help="Triton's dynamic batching limit (0: off)")
    triton.add_argument("--instances", type=int, default=1, help="model instances per server (default 1)")
    triton.add_argument("--kind", choices=("cpu", "gpu"), default="cpu", help="instance kind (default cpu)")
    triton.add_argument("--max-queue-delay-us", type=int, default=100, help="dynamic batcher's wait (default 100)")
    triton.add_argument("--force", action="store_true", help="overwrite an existing version")
    triton.set_defaults(handler=_export_triton)

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


def _keyify(args: argparse.Namespace) -> int:
    import time

    from export.keyify import KeyifyOptions, keyify  # the compiler needs the onnx package; the device does not
    from export.save import save
    from firmware_sim.keys import MasterKey
    from firmware_sim.spec import load_spec

    key = MasterKey.load(args.key)
    options = KeyifyOptions(
        size=args.size, mean=args.mean, std=args.std, channel_order=args.channel_order,
        model_order=args.model_order, spec=load_spec(args.spec), policy=args.layouts,
        split_after=args.split_after, epoch=args.epoch,
    )
    start = time.perf_counter()
    result = keyify(args.plain, key, options)
    seconds = time.perf_counter() - start
    written = save(result, args.output)
    plain_size = args.plain.stat().st_size
    print(f"keyed {args.plain} for {key.fingerprint} ({args.layouts} layouts) in {seconds:.2f} s; "
          f"{result.stats['plain_nodes']} plain nodes -> {result.stats['keyed_nodes']} keyed nodes")
    for path in written:
        note = f" ({path.stat().st_size / plain_size:.2f}x the plain model)" if path.suffix == ".onnx" else ""
        print(f"wrote {path}{note}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from edge.verify import list_images, verify
    from firmware_sim.keys import MasterKey

    key = MasterKey.load(args.key)
    images = list_images(args.images)[: args.limit]
    report = verify(args.plain, args.keyed, key, images)
    print(f"images        {report.images}")
    print(f"max abs diff  {report.max_abs_diff:.3g}")
    print(f"max rel diff  {report.max_rel_diff:.3g}")
    print(f"top-1 agree   {report.agreement * 100:.2f} %")
    print("verdict       " + ("exact" if report.exact else "NOT EXACT"))
    return 0 if report.exact else EXIT_ERROR


def _inspect(args: argparse.Namespace) -> int:
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


def _run_loop(job, config, progress: bool) -> dict:
    from tqdm import tqdm

    from edge.loop import CaptureLoop

    bar = tqdm(unit="frame", desc="keycam", disable=not progress or None, leave=False, file=sys.stderr)
    server = None
    try:
        if config.metrics.port:
            from edge.metrics import MetricsServer

            server = MetricsServer(config.metrics.host, config.metrics.port)
            for sink in job.sinks:
                if hasattr(sink, "pending"):  # the forwarding sink
                    server.watch_forwarding(sink)
            print(f"keycam: metrics on http://{config.metrics.host}:{server.port}/metrics", file=sys.stderr)
        loop = CaptureLoop(job.source, job.pipeline, job.sinks, queue_size=config.loop.queue,
                           max_frames=config.loop.max_frames, realtime=config.loop.realtime, progress=bar,
                           metrics_server=server)
        metrics = loop.run()
    finally:
        bar.close()
        if server is not None:
            server.close()
    return metrics.summary()


def _print_summary(summary: dict, job) -> None:
    print(f"keycam: {summary['frames']} frames at {summary['fps']:.1f} fps, {summary['drops']} dropped, "
          f"{summary['errors']} errors, {summary['skipped']} skipped; key {job.key.fingerprint}; "
          f"mean ms per stage {summary['stage_ms_mean']}; stopped by {summary['stopped_by']}", file=sys.stderr)
    for sink in job.sinks:
        stats = getattr(sink, "stats", None)
        if stats is not None:
            waiting = len(sink.spool)
            print(f"keycam: forwarded to {sink.client.url}: {stats.answered} answered, {stats.rejected} refused, "
                  f"{stats.failures} failed attempts, {stats.spooled} spooled, {stats.dropped} dropped (spool full), "
                  f"{waiting} waiting in '{sink.spool.folder}'", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    import os

    from edge.server import ServerError, read_token, serve

    if not 0 < args.port < 65536:
        raise ServerError(f"--port {args.port} is not a TCP port (1..65535)")
    if args.max_body_mb <= 0 or args.threads < 0 or args.concurrency < 1 or args.max_batch < 1:
        raise ServerError("--max-body-mb must be > 0, --threads >= 0, --concurrency >= 1 and --max-batch >= 1")
    token = read_token(args.token_file) if args.token_file else os.environ.get("KEYCAM_SERVER_TOKEN") or None

    def ready(models) -> None:
        for name, versions in models.models.items():
            for version, model in versions.items():
                keyed = f"keyed for {model.fingerprint} ({model.manifest.role})" if model.manifest else "not keyed"
                print(f"keycam serve: {name} v{version}: {keyed}", file=sys.stderr)
        auth = "bearer token required" if token else "no authentication"
        print(f"keycam serve: starting on http://{args.host}:{args.port} ({auth})", file=sys.stderr, flush=True)

    serve(args.model_repository, host=args.host, port=args.port, token=token, max_body_mb=args.max_body_mb,
          threads=args.threads or None, concurrency=args.concurrency, max_batch=args.max_batch, ready=ready)
    return 0


def _export_triton(args: argparse.Namespace) -> int:
    from export.triton import TritonOptions, export_triton

    options = TritonOptions(max_batch_size=args.max_batch_size, instances=args.instances, kind=args.kind,
                            max_queue_delay_us=args.max_queue_delay_us, version=args.version, force=args.force)
    folder = export_triton(args.model, args.repository, args.name, options)
    print(f"keycam: wrote {folder / 'model.onnx'} and {folder.parent / 'config.pbtxt'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from edge.config import Config, load_config
    from edge.job import build_job

    config = load_config(args.config) if args.config else Config()
    if args.max_frames is not None:
        config.loop.max_frames = args.max_frames
    job = build_job(config)
    summary = _run_loop(job, config, progress=False)
    _print_summary(summary, job)
    return 0


def _record(args: argparse.Namespace) -> int:
    from edge.config import Config, load_config
    from edge.job import build_job

    config = load_config(args.config) if args.config else Config()
    if args.max_frames is not None:
        config.loop.max_frames = args.max_frames
    config.output.record = str(args.output)
    config.output.record_plain = args.plain_debug
    if args.plain_debug:
        print("keycam record: WARNING: --plain-debug records PLAIN frames; anyone with the file sees the scene",
              file=sys.stderr)
    job = build_job(config)
    summary = _run_loop(job, config, progress=False)
    _print_summary(summary, job)
    print(f"keycam: recorded {summary['frames']} measurements to {args.output}", file=sys.stderr)
    return 0


def _source_config(args: argparse.Namespace):
    """A configuration from --config, with a SOURCE path, --model and --key laid over it."""
    from edge.config import Config, ConfigError, load_config

    config = load_config(args.config) if args.config else Config()
    source = args.source
    if source is None:
        pass
    elif source.suffix == ".mcap":
        config.source.kind = "recording"
    elif source.is_dir():
        config.source.kind = "folder"
    elif source.is_file():
        config.source.kind, config.source.virtual = "opencv", True
    else:
        raise ConfigError(f"source '{source}' does not exist")
    if source is not None:
        config.source.target = str(source)
    if args.model is not None:
        config.model.path = str(args.model)
    if args.key is not None:
        config.model.key = str(args.key)
    return config


def _preview(args: argparse.Namespace) -> int:
    from edge.job import build_job
    from edge.preview import preview

    config = _source_config(args)
    if config.source.kind == "opencv":
        config.source.virtual = False  # the preview reads the plain frames itself
    job = build_job(config, replay=True)
    source = job.source.source if hasattr(job.source, "source") else job.source  # bypass the virtual sensor
    path = preview(source, job.pipeline, args.output, frames=args.frames)
    print(f"keycam preview: WARNING: {path} shows PLAIN frames (key holders only); protect or delete it",
          file=sys.stderr)
    print(f"wrote {path}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from edge.job import build_job

    config = _source_config(args)
    config.output.results = args.output
    if args.record is not None:
        config.output.record = str(args.record)
    config.loop.realtime = args.realtime
    job = build_job(config, replay=True)
    summary = _run_loop(job, config, progress=True)
    _print_summary(summary, job)
    return 0


def _validate_config(args: argparse.Namespace) -> int:
    from edge.config import load_config

    config = load_config(args.config)
    print(f"{args.config}: valid ({config.source.kind} source, model {config.model.path or 'default'})")
    return 0


def _eval_privacy(args: argparse.Namespace) -> int:
    import tempfile

    from tqdm import tqdm

    from edge.datasets import load_labelled
    from edge.evaluate import paper_table
    from export.keyify import KeyifyOptions, keyify  # compiling the keyed twin needs the onnx package
    from export.save import save
    from firmware_sim.keys import MasterKey
    from firmware_sim.spec import PRESETS

    frames, labels, order = load_labelled(args.data)
    if args.limit:
        frames, labels = frames[: args.limit], labels[: args.limit]
    if order == "bgr":  # image files: sensor frames in RGB, as a camera configured for the model would give
        frames = frames[..., ::-1].copy()
    finetune = _finetune_setup(args) if args.finetune_epochs else None
    spec = PRESETS["gray8"] if frames.shape[-1] == 1 else PRESETS["rgb8"]
    key = MasterKey.load(args.key) if args.key else MasterKey.generate()
    options = KeyifyOptions(mean=args.mean, std=args.std, spec=spec, policy=args.layouts,
                            model_order=args.model_order, size=tuple(frames.shape[1:3]))
    with tempfile.TemporaryDirectory(prefix="keycam-eval-") as folder:
        keyed = Path(folder) / "keyed.onnx"
        save(keyify(args.model, key, options), keyed)
        passes = 3 + args.wrong_keys + (finetune is not None)
        with tqdm(total=passes, unit="pass", desc="eval", disable=None, file=sys.stderr) as bar:
            table = paper_table(args.model, keyed, key, frames, labels, wrong_keys=args.wrong_keys,
                                progress=bar.update, finetune=finetune)
    print(f"{table.images} images from {args.data}, {args.layouts} layouts, key {key.fingerprint}\n")
    print("| | top-1 accuracy |")
    print("|---|---|")
    for row, value in table.rows():
        print(f"| {row} | {value} |")
    return 0


def _finetune_setup(args: argparse.Namespace):
    """(training frames, labels, finetuner, note) for paper_table's fine-tuned row; checks before any work."""
    from edge.datasets import load_labelled
    from edge.errors import ModelError
    from edge.evaluate import training_split
    from export.finetune import finetune, predict, require_torch  # PyTorch and onnx: never on the device path

    if args.finetune_epochs < 0:
        raise ModelError(f"--finetune-epochs {args.finetune_epochs}: give a number of epochs >= 1 (0: no fine-tuning)")
    try:
        require_torch()
    except ImportError as error:
        raise ModelError(f"--finetune-epochs {args.finetune_epochs}: {error}") from None
    if args.finetune_data is None:
        found = training_split(args.data)
        if found is None:
            raise ModelError(f"'{args.data}' has no training split (train-*-idx3-ubyte files) to fine-tune on; pass "
                             "--finetune-data DIR with labelled training images other than the evaluation images "
                             "(foolbox's 20 samples are too few to fine-tune on)")
        train_frames, train_labels = found
    else:
        if args.finetune_data.resolve() == args.data.resolve():
            raise ModelError(f"--finetune-data '{args.finetune_data}' is the evaluation folder; fine-tune on "
                             "other images, or the row measures memorisation, not the attack")
        train_frames, train_labels, order = load_labelled(args.finetune_data)
        if order == "bgr":
            train_frames = train_frames[..., ::-1].copy()
    if args.finetune_limit:
        train_frames, train_labels = train_frames[: args.finetune_limit], train_labels[: args.finetune_limit]

    def finetuner(inputs, labels):
        def report(epoch, loss):
            print(f"fine-tune epoch {epoch + 1}/{args.finetune_epochs}: training loss {loss:.3f}", file=sys.stderr)

        module = finetune(args.model, inputs, labels, args.finetune_epochs, progress=report)
        return lambda x: predict(module, x)

    epochs = f"{args.finetune_epochs} epoch{'s' if args.finetune_epochs != 1 else ''}"
    return train_frames, train_labels, finetuner, epochs


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
