"""Every attack on the readout, side by side: the paper's readout (rgb8, gray8) against the sealed one (-sealed).

Sections (``--only`` picks some; each prints a markdown table, mean +- standard deviation over ``--repeats``
keys, each repeat with its own key and, where the data allow, its own frames):

- ``known-plaintext``: fraction of the readout order recovered from 1-10 (plain, measurement) pairs
  (``edge.lab.attacks.known_plaintext``). Sealed: the same matching run on (plain, ciphertext) pairs.
- ``correlation``: ciphertext only: a 64x64 grey camera pans over scikit-image's photographs; true neighbours among
  each position's 4 most correlated and the picture reassembled from the stream (``edge.lab.attacks.reassembly``),
  scored on 5 held-out photographs (benchmarks/attack_correlation.py's set-up). Sealed: the same on ciphertext;
  "order" scores the found order as if the attacker could open the frames, "seen" what it gives them (ciphertext
  in that order).
- ``statistics``: the key-independent attacker (``edge.lab.attacks.statistics``): a classifier on permutation-
  invariant code statistics (histogram, sorted codes) of Fashion-MNIST's 60,000 public plain training pictures,
  scored on the 10,000 test measurements; and, sealed, one trained on labelled sealed measurements.
- ``finetune``: the plain Fashion-MNIST CNN fine-tuned on labelled measurements (``edge.lab.attacks.finetune``),
  scored on the test measurements. Sealed: fine-tuned on ciphertext.
- ``stolen-model``: a keyed model file without the key (``edge.lab.attacks.stolen_model``): the readout order read
  from its first index table, applied to measurements; and the keyed model run on measurements as they travel.

    python benchmarks/attacks_sealed.py [--only SECTION[,SECTION]] [--repeats N] [--finetune-images N]
        [--finetune-epochs N] [--statistics-epochs N] [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.attack_correlation import SIZE, held_out, pan  # noqa: E402
from benchmarks.attack_known_plaintext import photo_crops  # noqa: E402
from edge.lab.attacks.camera import Camera  # noqa: E402
from edge.lab.attacks.inversion import quality  # noqa: E402
from edge.lab.attacks.known_plaintext import correlation_neighbours, known_plaintext, neighbour_precision  # noqa: E402
from edge.lab.attacks.reassembly import reassemble, reconstruction_quality, unscramble  # noqa: E402
from edge.lab.attacks.statistics import (StatisticsClassifier, chance, code_statistics, public_statistics,  # noqa: E402
                                         uniformity)
from edge.lab.attacks.stolen_model import stolen_order  # noqa: E402
from edge.lab.attacks.stolen_model import unscramble as put_in_order  # noqa: E402
from edge.lab.datasets import fashion_mnist, foolbox_images  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

FASHION_MODEL = ROOT / "edge" / "assets" / "fashion_mnist_cnn.onnx"
FASHION_MEAN, FASHION_STD = 72.94, 90.0
PAIRS = (1, 2, 3, 5, 10)
FRAMES = (10, 100, 300, 1000, 3000)
SECTIONS = ("known-plaintext", "correlation", "statistics", "finetune", "stolen-model")


def key_of(repeat: int) -> MasterKey:
    """The repeat's key: fixed, so that a rerun reproduces the table (they protect nothing)."""
    return MasterKey(hashlib.sha256(f"keycam attacks, key {repeat}".encode()).digest())


def spread(values, percent: bool = True, digits: int = 1) -> str:
    values = np.asarray(values, dtype=np.float64) * (100 if percent else 1)
    if np.isinf(values).all():
        return "inf (identical)"
    unit = " %" if percent else ""
    return f"{values.mean():.{digits}f} +- {values.std():.{digits}f}{unit}"


def cifar() -> np.ndarray:
    return np.stack([cv2.imread(str(p)) for p, _ in foolbox_images("cifar10")])


def known_plaintext_section(repeats: int) -> None:
    fashion = fashion_mnist("t10k")[0]
    cases = {"CIFAR-10 32x32, 8-bit colour": (lambda r: np.roll(cifar(), -2 * r, axis=0)[:10], "rgb8"),
             "Fashion-MNIST 28x28, 8-bit grey": (lambda r: fashion[10 * r:10 * r + 10], "gray8"),
             "photo 128x128, 8-bit colour": (lambda r: np.stack(photo_crops(10 + r)[r:]), "rgb8")}
    print(f"| frames ({repeats} keys; chance: 1/N of the positions) | readout | "
          + " | ".join(f"{k} pair{'s' * (k > 1)}" for k in PAIRS) + " |")
    print("|---|---|" + "---|" * len(PAIRS))
    for name, (frames_of, kind) in cases.items():
        for preset in (kind, f"{kind}-sealed"):
            right, claimed = np.zeros((repeats, len(PAIRS))), np.zeros((repeats, len(PAIRS)))
            for r in range(repeats):
                frames, camera = frames_of(r), Camera(key_of(r), PRESETS[preset])
                truth = camera.order(*frames.shape[1:3])
                measured = list(camera.stream(frames))
                for i, k in enumerate(PAIRS):
                    estimate = known_plaintext(list(frames[:k]), measured[:k], PRESETS[preset])
                    right[r, i], claimed[r, i] = np.mean(estimate == truth), np.mean(estimate >= 0)
            cells = [spread(right[:, i]) if preset == kind else
                     f"{spread(right[:, i], digits=2)} (claimed {claimed[:, i].mean() * 100:.1f} %)"
                     for i in range(len(PAIRS))]
            print(f"| {name} | {preset} | " + " | ".join(cells) + " |", flush=True)


def _scores(camera: Camera, placement: np.ndarray | None, sealed_view: bool) -> tuple[float, float]:
    """Mean (PSNR, SSIM) over the held-out frames of the measurement (or ciphertext) put in ``placement``'s order."""
    out = []
    for frame in held_out():
        shown = camera.read(frame) if sealed_view else camera.transform(frame)  # ciphertext, or the frame opened
        estimate = shown if placement is None else unscramble(shown, placement)
        q = reconstruction_quality(estimate, frame, 255.0)
        out.append((q.psnr, q.ssim))
    return tuple(np.mean(out, axis=0))


def correlation_section(repeats: int) -> None:
    video = pan(max(FRAMES))
    print(f"64x64 grey pan, {repeats} keys; PSNR (dB) / SSIM: mean over the 5 held-out photographs, best of the 8 "
          f"symmetries; chance for the neighbours: {4 / (SIZE * SIZE - 1) * 100:.2f} %\n")
    print("| frames under one order | readout | true neighbours | reassembled order: PSNR | SSIM "
          "| what the attacker sees: PSNR | SSIM |")
    print("|---|---|---|---|---|---|---|")
    for preset in ("gray8", "gray8-sealed"):
        sealed = preset.endswith("sealed")
        base = [(_scores(Camera(key_of(r), PRESETS[preset]), None, False),
                 _scores(Camera(key_of(r), PRESETS[preset]), None, sealed)) for r in range(repeats)]
        print(f"| baseline: the measurement as the picture | {preset} | | {spread([b[0][0] for b in base], False)} "
              f"| {spread([b[0][1] for b in base], False, 2)} | {spread([b[1][0] for b in base], False)} "
              f"| {spread([b[1][1] for b in base], False, 2)} |")
        for frames in FRAMES:
            rows = []
            for r in range(repeats):
                camera = Camera(key_of(r), PRESETS[preset])
                measured = camera.stream(video[:frames]).reshape(frames, -1)
                precision = neighbour_precision(correlation_neighbours(measured, k=4), camera.order(SIZE, SIZE),
                                                SIZE, SIZE)
                placement = reassemble(measured, SIZE, SIZE).placement
                rows.append((precision, *_scores(camera, placement, False), *_scores(camera, placement, sealed)))
            rows = np.array(rows)
            print(f"| {frames} | {preset} | {spread(rows[:, 0], digits=2)} | {spread(rows[:, 1], False)} "
                  f"| {spread(rows[:, 2], False, 2)} | {spread(rows[:, 3], False)} | {spread(rows[:, 4], False, 2)} |",
                  flush=True)


def statistics_section(repeats: int, epochs: int = 10) -> None:
    train, train_labels = fashion_mnist("train")
    test, labels = fashion_mnist("t10k")
    public = public_statistics(train, PRESETS["gray8"])
    print(f"Fashion-MNIST, {repeats} repeats (a key and a classifier seed each), {epochs} epochs; chance "
          f"{chance(labels) * 100:.1f} %\n")
    print("| attacker | readout | accuracy on the 10,000 test measurements |")
    print("|---|---|---|")
    rows: dict[tuple[str, str], list[float]] = {}
    for r in range(repeats):
        classifier = StatisticsClassifier(epochs=epochs, seed=r).fit(public, train_labels)
        rows.setdefault(("trained on public plain pictures, scored on the plain test pictures", "(none)"),
                        []).append(classifier.accuracy(public_statistics(test, PRESETS["gray8"]), labels))
        for preset in ("gray8", "gray8-sealed"):
            camera = Camera(key_of(r), PRESETS[preset])
            measured = code_statistics(camera.stream(test))
            rows.setdefault(("trained on public plain pictures", preset), []).append(
                classifier.accuracy(measured, labels))
            if preset.endswith("sealed"):
                labelled = code_statistics(Camera(key_of(r), PRESETS[preset]).stream(train))
                own = StatisticsClassifier(epochs=epochs, seed=r).fit(labelled, train_labels)
                rows.setdefault(("trained on 60,000 labelled sealed measurements", preset), []).append(
                    own.accuracy(measured, labels))
        print(f"repeat {r + 1} done", file=sys.stderr, flush=True)
    for (attacker, preset), values in rows.items():
        print(f"| {attacker} | {preset} | {spread(values)} |")
    for count in (300, 10000):
        stat, p = uniformity(Camera(key_of(0), PRESETS["gray8-sealed"]).stream(test[:count]))
        paper, q = uniformity(Camera(key_of(0), PRESETS["gray8"]).stream(test[:count]))
        print(f"\nchi-square against uniform bytes, {count} measurements: sealed {stat:.0f} (p = {p:.3f}); "
              f"paper's {paper:.3g} (p = {q:.3g})")


def finetune_section(repeats: int, images: int, epochs: int, threads: int) -> None:
    import torch

    from edge.lab.attacks.finetune import finetune, predict

    torch.set_num_threads(threads)
    train, train_labels = fashion_mnist("train")
    test, labels = fashion_mnist("t10k")
    print(f"Fashion-MNIST CNN (92.11 % plain), fine-tuned on {images} labelled measurements for {epochs} epoch(s) "
          f"(Adam, one-cycle 1e-3, batch 128, {threads} PyTorch thread(s)), {repeats} repeats (a key, training images and seed each)\n")
    print("| attacker | readout | accuracy on the 10,000 test measurements |")
    print("|---|---|---|")
    for preset in ("gray8", "gray8-sealed"):
        scores = []
        for r in range(repeats):
            chosen = np.random.default_rng(r).choice(len(train), images, replace=False)
            camera = Camera(key_of(r), PRESETS[preset])
            form = lambda m: ((m.astype(np.float32) - FASHION_MEAN) / FASHION_STD).transpose(0, 3, 1, 2)  # noqa: E731
            module = finetune(FASHION_MODEL, form(camera.stream(train[chosen])), train_labels[chosen], epochs, seed=r)
            scores.append(np.mean(predict(module, form(camera.stream(test))) == labels))
            print(f"{preset} repeat {r + 1}: {scores[-1] * 100:.2f} %", file=sys.stderr, flush=True)
        print(f"| plain CNN fine-tuned on labelled measurements | {preset} | {spread(scores, digits=2)} |", flush=True)


def _stolen_rows(name, plain, frames, labels, kind, options, repeats):
    import onnxruntime as ort

    from export.keyify import KeyifyOptions, keyify

    for policy in ("boundary", "fresh"):
        for preset in (kind, f"{kind}-sealed"):
            rows = []
            for r in range(repeats):
                key, camera = key_of(r), Camera(key_of(r), PRESETS[preset])
                result = keyify(plain, key, KeyifyOptions(policy=policy, spec=PRESETS[preset], **options))
                inverse = stolen_order(result.model)
                measured = camera.stream(frames)
                back = put_in_order(measured, inverse)
                truth = np.argsort(camera.order(*frames.shape[1:3]))
                score = quality(back[:50], frames[:50])
                session = ort.InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"])
                predicted = session.run(None, {session.get_inputs()[0].name: measured})[0].argmax(axis=1)
                rows.append((np.mean(inverse == truth), np.mean([np.array_equal(b, f) for b, f in zip(back, frames)]),
                             score.psnr, score.ssim,
                             np.mean(predicted == labels)))
            rows = np.array(rows)
            print(f"| {name} | {policy} | {preset} | {spread(rows[:, 0])} | {spread(rows[:, 1])} "
                  f"| {spread(rows[:, 2], False)} | {spread(rows[:, 3], False, 2)} | {spread(rows[:, 4])} |", flush=True)


def stolen_model_section(repeats: int) -> None:
    from export.zoo.keras_cifar import convert

    test, labels = fashion_mnist("t10k")
    images = foolbox_images("cifar10")
    colour = np.stack([cv2.imread(str(p))[:, :, ::-1] for p, _ in images])
    print(f"{repeats} keys; PSNR/SSIM over the first 50 frames (inf: identical); accuracy: the keyed model fed the "
          "measurements as they travel (not opened)\n")
    print("| model | policy | readout | order recovered from the model | frames recovered exactly "
          "| unscrambled: PSNR (dB) | SSIM | keyed model on them |")
    print("|---|---|---|---|---|---|---|---|")
    _stolen_rows("fashion-mnist-cnn, 1000 test images", onnx.load(FASHION_MODEL), test[:1000], labels[:1000], "gray8",
                 dict(mean=(FASHION_MEAN,), std=(FASHION_STD,)), repeats)
    _stolen_rows("cifar10-keras-cnn, 20 foolbox images", convert(), colour, np.array([lab for _, lab in images]),
                 "rgb8", {}, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--repeats", type=int, default=5, help="keys (and seeds) per figure")
    parser.add_argument("--finetune-images", type=int, default=10000, help="training measurements for finetune")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--statistics-epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (finetune)")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, load "
          f"{open('/proc/loadavg').read().split()[0]}")
    run = {"known-plaintext": lambda: known_plaintext_section(args.repeats),
           "correlation": lambda: correlation_section(args.repeats),
           "statistics": lambda: statistics_section(args.repeats, args.statistics_epochs),
           "finetune": lambda: finetune_section(args.repeats, args.finetune_images, args.finetune_epochs, args.threads),
           "stolen-model": lambda: stolen_model_section(args.repeats)}
    for section in wanted:
        start = time.perf_counter()
        print(f"\n### {section}\n", flush=True)
        run[section]()
        print(f"\n({section}: {time.perf_counter() - start:.0f} s, load {open('/proc/loadavg').read().split()[0]})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
