"""What reading raw Bayer costs a trained model: real photographs made into mosaics, keyed-from-raw against the
plain model on the mini-ISP's frame (exactness) and on the picture itself (what 2x2 binning costs).

Pictures: the real photographs that ship with scikit-image (read from the installed package's data folder,
no download) and foolbox's 20 CIFAR-10 test images upsampled (bilinear) from 32x32 to 64x64. Each goes
through the device's own rule for a Bayer spec (``edge.sensor.to_sensor``: centre crop, area resize to
2H x 2W = 64x64, ``simulate_cfa``) and the keyed readout; the model is the trained Keras CIFAR-10 CNN
(``export.zoo.keras_cifar``, 32x32 RGB, raw 0..255 input), keyed for the spec with the default mini-ISP.

- keyed-from-raw: the keyed model on the measurement (H x W cells of R, Gr, Gb, B);
- plain-from-mini-ISP: the plain model on ``edge.isp`` run in numpy on the same cells;
- plain-from-RGB: the plain model on the picture fitted to 32x32 directly (``fit_frame``);
- conventional ISP: OpenCV's demosaic of the 64x64 mosaic (``cv2.cvtColor``, edge-aware bilinear) then an
  area downscale to 32x32, plain model on that.

Prints markdown tables with the date and machine (docs/benchmarks.md).

    python benchmarks/bayer_accuracy.py
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import date
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.isp import sensor_rgb  # noqa: E402
from edge.lab.datasets import foolbox_images  # noqa: E402
from edge.lab.verify import plain_input  # noqa: E402
from edge.sensor import fit_frame, simulate_cfa, to_sensor  # noqa: E402
from edge.transform import AdcTransform  # noqa: E402
from export.keyify import IspOptions, KeyifyOptions, keyify  # noqa: E402
from export.zoo.keras_cifar import convert  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402
from firmware_sim.spec import PRESETS  # noqa: E402

SIZE = 32  # the model's input: 32 x 32 cells, a 64 x 64 mosaic
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg",
          "hubble_deep_field.jpg", "ihc.png")  # scikit-image's real colour photographs
# OpenCV names a Bayer pattern by the second row's second and third photosites: an RGGB sensor is "BG"
DEMOSAIC = {"RGGB": cv2.COLOR_BayerBG2BGR, "GRBG": cv2.COLOR_BayerGB2BGR, "GBRG": cv2.COLOR_BayerGR2BGR,
            "BGGR": cv2.COLOR_BayerRG2BGR}
SPECS = {  # name: (spec, the ISP that maps an 8-bit picture's codes back to 0..255)
    "bayer12to8 (RGGB, 12-bit in, 8-bit out)": (PRESETS["bayer12to8"], IspOptions()),
    "bggr12msb (BGGR, 12-bit MSB words, 12-bit out)": (PRESETS["bggr12msb"], IspOptions(white=255 << 4)),
}


def photos() -> list[np.ndarray]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [cv2.imread(str(folder / name), cv2.IMREAD_COLOR) for name in PHOTOS]  # B,G,R uint8


def cifar() -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(the 32x32 originals, B,G,R; their 64x64 bilinear upsamples; the labels)."""
    images = foolbox_images("cifar10")
    originals = np.stack([cv2.imread(str(p)) for p, _ in images])
    pictures = [cv2.resize(o, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_LINEAR) for o in originals]
    return originals, pictures, np.array([label for _, label in images])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class Runner:
    def __init__(self, spec, isp: IspOptions, policy: str, key: MasterKey) -> None:
        import onnxruntime as ort

        self.spec, self.key = spec, key
        plain = convert()
        self.keyed = keyify(plain, key, KeyifyOptions(spec=spec, policy=policy, isp=isp))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.keyed_session = ort.InferenceSession(self.keyed.model.SerializeToString(), options,
                                                  providers=["CPUExecutionProvider"])
        self.plain_session = ort.InferenceSession(plain.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.transform = AdcTransform(key, spec)

    def plain(self, rgb: np.ndarray) -> np.ndarray:
        """The plain model on (N, 32, 32, 3) R, G, B on the 0..255 scale."""
        x = np.ascontiguousarray(rgb.astype(np.float32).transpose(0, 3, 1, 2))  # (N, H, W, 3) -> (N, 3, H, W)
        return self.plain_session.run(None, {"input": x})[0]

    def run(self, pictures: list[np.ndarray]) -> dict:
        sensor = np.stack([to_sensor(p, self.spec, SIZE, SIZE, source_order="bgr") for p in pictures])  # mosaics
        measured = np.stack([self.transform(m) for m in sensor])
        keyed = self.keyed_session.run(None, {"measurement": measured})[0]
        manifest = self.keyed.manifest
        from_isp = self.plain_session.run(None, {"input": plain_input(sensor, manifest)})[0]
        isp_image = sensor_rgb(sensor, self.spec, manifest.input.isp)  # (N, 32, 32, 3) RGB
        direct = np.stack([fit_frame(p, SIZE, SIZE)[:, :, ::-1] for p in pictures])  # RGB
        conventional = []
        for p in pictures:
            mosaic8 = simulate_cfa(fit_frame(p, 2 * SIZE, 2 * SIZE), self.spec.cfa, "bgr")[:, :, 0]
            demosaiced = cv2.cvtColor(mosaic8, DEMOSAIC[self.spec.cfa])  # (64, 64, 3) B,G,R
            conventional.append(cv2.resize(demosaiced, (SIZE, SIZE), interpolation=cv2.INTER_AREA)[:, :, ::-1])
        conventional = np.stack(conventional)
        diff = np.abs(keyed - from_isp).max(axis=1)
        return {
            "keyed": keyed.argmax(1), "from_isp": from_isp.argmax(1), "from_rgb": self.plain(direct).argmax(1),
            "conventional": self.plain(conventional).argmax(1),
            "max_abs": float(diff.max()), "max_rel": float((diff / np.abs(from_isp).max(axis=1)).max()),
            "psnr_isp": [psnr(a, b) for a, b in zip(isp_image, direct)],
            "psnr_conventional": [psnr(a, b) for a, b in zip(conventional, direct)],
        }


def main() -> int:
    key = MasterKey.generate()
    originals, cifar_pictures, labels = cifar()
    sets = {"scikit-image photos": (photos(), None), "foolbox CIFAR-10 (64x64)": (cifar_pictures, labels)}
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.platform()}; model: the Keras CIFAR-10 CNN at {SIZE}x{SIZE}, "
          f"mosaics {2 * SIZE}x{2 * SIZE}\n")
    results = {}
    print("| pictures | spec | policy | images | max abs diff | max rel diff | top-1 agreement |")
    print("|---|---|---|---|---|---|---|")
    for set_name, (pictures, _) in sets.items():
        for spec_name, (spec, isp) in SPECS.items():
            for policy in ("fresh", "boundary"):
                r = Runner(spec, isp, policy, key).run(pictures)
                results[set_name, spec_name, policy] = r
                agree = np.mean(r["keyed"] == r["from_isp"]) * 100
                print(f"| {set_name} | {spec_name} | {policy} | {len(pictures)} | {r['max_abs']:.2g} | "
                      f"{r['max_rel']:.2g} | {agree:.0f} % |")
    print("\n(keyed-from-raw against plain-from-mini-ISP: the plain model on the numpy mini-ISP of the same cells)\n")
    print("| pictures | spec | keyed-from-raw = plain-from-RGB (top-1) | PSNR mini-ISP vs RGB, dB (mean / min) | "
          "conventional ISP = plain-from-RGB (top-1) | PSNR conventional vs RGB, dB (mean / min) | "
          "plain-from-mini-ISP = conventional (top-1) | CIFAR-10 accuracy: original 32x32 / RGB / keyed-from-raw / "
          "conventional |")
    print("|---|---|---|---|---|---|---|---|")
    for set_name, (pictures, truth) in sets.items():
        for spec_name in SPECS:
            r, other = results[set_name, spec_name, "fresh"], results[set_name, spec_name, "boundary"]
            assert np.array_equal(r["keyed"], other["keyed"])  # the policies agree image by image
            n = len(pictures)
            accuracy = "n/a (no CIFAR labels)"
            if truth is not None:
                runner = Runner(*SPECS[spec_name], "boundary", key)
                first = np.mean(runner.plain(originals[:, :, :, ::-1]).argmax(1) == truth) * 100
                accuracy = f"{first:.0f} % / " + " / ".join(f"{np.mean(r[k] == truth) * 100:.0f} %"
                                                             for k in ("from_rgb", "keyed", "conventional"))
            print(f"| {set_name} | {spec_name} | {np.sum(r['keyed'] == r['from_rgb'])}/{n} | "
                  f"{np.mean(r['psnr_isp']):.1f} / {np.min(r['psnr_isp']):.1f} | "
                  f"{np.sum(r['conventional'] == r['from_rgb'])}/{n} | "
                  f"{np.mean(r['psnr_conventional']):.1f} / {np.min(r['psnr_conventional']):.1f} | "
                  f"{np.sum(r['from_isp'] == r['conventional'])}/{n} | {accuracy} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
