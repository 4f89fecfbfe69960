"""The lab's commands: ``eval privacy`` (the paper's table) and ``demo`` (the embedded default's readout demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.cli.args import count, floats, path, positive, positive_floats
from firmware_sim.keys import MasterKey


def register(commands) -> None:
    evaluate = commands.add_parser("eval", help="evaluations: `keycam eval privacy` prints the paper's table")
    kinds = evaluate.add_subparsers(dest="evaluation", required=True, metavar="EVALUATION")
    privacy = kinds.add_parser("privacy", help="plain/scrambled/keyed/wrong-key accuracy of a plain classifier")
    privacy.add_argument("--model", required=True, type=path, metavar="PLAIN.onnx")
    privacy.add_argument("--data", required=True, type=path, metavar="DIR",
                         help="labelled images (label after the last underscore) or IDX files")
    privacy.add_argument("--mean", type=floats, default=None, metavar="R,G,B")
    privacy.add_argument("--std", type=positive_floats, default=None, metavar="R,G,B")
    privacy.add_argument("--key", type=path, default=None, metavar="KEYFILE", help="default: a fresh key, not saved")
    privacy.add_argument("--layouts", choices=("boundary", "fresh"), default="boundary",
                         help="layout policy of the keyed twin (default boundary; the accuracy does not depend on it)")
    privacy.add_argument("--model-order", choices=("rgb", "bgr"), default="rgb", help="the plain model's order")
    privacy.add_argument("--wrong-keys", type=positive, default=5, help="how many wrong keys to try (default 5)")
    privacy.add_argument("--limit", type=positive, default=None, help="use the first N images only")
    privacy.add_argument("--finetune-epochs", type=count, default=0, metavar="N",
                         help="add the row 'plain model fine-tuned on scrambled images' (N epochs; needs PyTorch)")
    privacy.add_argument("--finetune-data", type=path, default=None, metavar="DIR",
                         help="labelled training images for fine-tuning (default: the train-* IDX files in --data)")
    privacy.add_argument("--finetune-limit", type=positive, default=None, metavar="N",
                         help="fine-tune on the first N training images only")
    privacy.set_defaults(handler=privacy_command)

    demo = commands.add_parser("demo", help="the embedded default job (no camera, no server)")
    demo.add_argument("--out", type=path, default=Path("keycam-demo"), help="output folder (default keycam-demo/)")
    demo.add_argument("--image", type=path, default=None, help="an 8-bit colour picture instead of the sample photo")
    demo.add_argument("--key", type=path, default=None, help="use this key instead of generating one")
    demo.set_defaults(handler=demo_command)


def privacy_command(args: argparse.Namespace) -> int:
    import tempfile

    from tqdm import tqdm

    from edge.lab.datasets import load_labelled
    from edge.lab.evaluate import finetune_plan, paper_table
    from export.keyify import KeyifyOptions, keyify  # compiling the keyed twin needs the onnx package
    from export.package.save import save
    from firmware_sim.spec import PRESETS

    frames, labels, order = load_labelled(args.data)
    if args.limit:
        frames, labels = frames[: args.limit], labels[: args.limit]
    if order == "bgr":  # image files: sensor frames in RGB, as a camera configured for the model would give
        frames = frames[..., ::-1].copy()
    finetune = None
    if args.finetune_epochs:
        def report(epoch, loss):
            print(f"fine-tune epoch {epoch + 1}/{args.finetune_epochs}: training loss {loss:.3f}", file=sys.stderr)

        finetune = finetune_plan(args.model, args.data, args.finetune_epochs, args.finetune_data,
                                 args.finetune_limit, report)
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


def demo_command(args: argparse.Namespace) -> int:
    from edge.lab.demo import run_demo

    result = run_demo(args.out, image=args.image, key_path=args.key)
    height, width, channels = result.shape
    print(f"key        {result.key_path} (mode 0600), fingerprint {result.fingerprint}")
    print(f"picture    {result.image} ({height}x{width}, {channels} channels)")
    print(f"readout    firmware_sim {result.firmware_seconds:.2f} s, edge transform {result.edge_seconds * 1e3:.1f} ms")
    print(f"agreement  firmware_sim == edge transform, byte for byte: {result.identical}")
    print(f"sealed     firmware_sim's keystream core == the device's sealer, tag included: {result.sealed_identical}")
    print(f"inverse    right key restores the picture exactly: {result.restored}")
    print(f"wrong key  mean absolute error {result.wrong_key_mean_abs_error:.1f} codes (of 255)")
    print(f"wrote      {result.panel} (plain | paper's measurement | sealed | unscrambled | wrong key)")
    return 0
