"""keycam verify: a keyed model against its plain model on real images, raw outputs and decoded answers.

Each image is prepared exactly as the device prepares a camera frame (``edge.sensor``: the run's own framing, the
manifest's ``fit`` or the configuration's, the sensor's channel order and depth), read out with the key (the run's
readout stage, the model's spec and epoch), and run through the keyed model; the same sensor frame, normalised as
the manifest says, runs through the plain model. Frames go in batches the models take: a fixed-batch model's own
batch (the last batch padded with its last frame, whose outputs are not counted), else ``batch``.

Two comparisons, both needed for "exact" (what "the same" means, and why: ``edge.lab.compare``):

1. raw: every output, the keyed model's dense outputs put back in order with the key (``KeyedModel.restore``),
   against the plain model's, to 1e-4 of the output's range, frame by frame; a top-k output whose near-tied rows
   come back in another order is compared as a set of rows;
2. answers: the decoder the device would use (``edge.tasks.make_decoder``: the manifest's task, or ``settings``)
   decodes the plain model's outputs, and the device's own answer stage (``edge.answers.Answers``: restore, the
   frame's geometry, decode) the keyed model's raw outputs; the two answers are compared kind by kind, detections
   as sets. A model whose outputs no decoder reads is compared raw only, and the report says so.

A plain model that is not the one the keyed model was compiled from (other inputs or outputs, or another sha256
than the manifest records) is refused in one line before anything runs (:func:`check_pair`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.answers import Answers
from edge.errors import ConfigError, ImageFileError, ModelError
from edge.frame import Frame
from edge.imageio import read_frame
from edge.isp import sensor_rgb
from edge.lab.compare import TOLERANCES, Context, KindCheck, compare_answers, describe, raw_difference, rows_as_set
from edge.runtime import KeyedModel, open_session
from edge.sensor import Readout
from edge.tasks import TaskConfig
from firmware_sim.errors import KeycamError
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest, shape_text
from firmware_sim.words import IMAGE_SUFFIXES, is_image

DEFAULT_BATCH = 8  # frames per run for a model of dynamic batch


@dataclass
class OutputCheck:
    """One raw output over every frame: the worst difference, relative to the output's range on that frame."""

    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    moved: int = 0  # rows of a top-k output in another order (compared as a set)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and self.max_rel <= TOLERANCES.raw

    def add(self, got: np.ndarray, want: np.ndarray, kind: str) -> None:
        """One frame's output (the keyed model's restored, the plain model's)."""
        if got.shape != want.shape:
            self.problem = self.problem or f"shape {got.shape} from the keyed model, {want.shape} from the plain"
            return
        diff, scale = raw_difference(got, want)
        rel = diff / max(scale, 1e-12) if diff else 0.0
        if rel > TOLERANCES.raw and kind == "plain" and got.ndim == 3:  # (1, K, D): rows of a top-k?
            as_set = rows_as_set(got[0], want[0], TOLERANCES.raw * scale)
            if as_set is not None:
                self.moved += as_set[0]
                diff = as_set[1]
                rel = diff / max(scale, 1e-12)
        self.max_abs, self.max_rel = max(self.max_abs, diff), max(self.max_rel, rel)

    def line(self) -> tuple[str, str]:
        if self.problem:
            return f"raw {self.name}", f"{self.problem}: NOT EXACT"
        text = f"max abs diff {self.max_abs:.3g}, {self.max_rel:.2g} of its range (tolerance {TOLERANCES.raw:.0e})"
        if self.moved:
            text += f"; equal as a set of rows, {self.moved} rows in another order (near-tied top-k)"
        return f"raw {self.name}", text + (": ok" if self.ok else ": NOT EXACT")


@dataclass
class VerifyReport:
    images: int
    batch: int = 1
    fixed_batch: bool = False
    outputs: list[OutputCheck] = field(default_factory=list)
    answers: list[KindCheck] = field(default_factory=list)
    decoder: str = ""  # what decoded the answers
    not_decoded: str = ""  # why no answers were compared ("" when they were)
    refused: int = 0  # frames the decoder refused alike for both models (a FrameError: the device skips them)
    refusal: str = ""  # the first such frame's reason
    fit: str = "crop"  # how pictures were framed to the model's size (edge.fitting)

    @property
    def raw_exact(self) -> bool:
        return all(check.ok for check in self.outputs)

    @property
    def answers_exact(self) -> bool:
        return all(check.ok for check in self.answers)

    @property
    def exact(self) -> bool:
        return self.raw_exact and self.answers_exact

    @property
    def max_abs_diff(self) -> float:
        return max((check.max_abs for check in self.outputs), default=0.0)

    @property
    def max_rel_diff(self) -> float:
        return max((check.max_rel for check in self.outputs), default=0.0)

    @property
    def agreement(self) -> float:
        """The share of compared answers (detections, frames) that agree."""
        compared = sum(check.compared for check in self.answers)
        return sum(check.agreed for check in self.answers) / compared if compared else 1.0

    def lines(self) -> list[tuple[str, str]]:
        """(column, text) per line: the images, one line per raw output, the decoder, one line per answer kind,
        the verdict."""
        how = "the model's fixed batch" if self.fixed_batch else "the model's batch is dynamic"
        lines = [("images", f"{self.images}, framed by {self.fit} (batches of {self.batch}: {how})")]
        lines += [check.line() for check in self.outputs]
        answers = f"not decoded: {self.not_decoded}" if self.not_decoded else self.decoder
        if self.refused:
            answers += (f"; {self.refused} of {self.images} frames refused by the decoder for both models alike, "
                        f"not compared: {self.refusal}")
        lines.append(("answers", answers))
        lines += [describe(check) for check in self.answers]
        failed = [f"raw {c.name}" for c in self.outputs if not c.ok] + [c.kind for c in self.answers if not c.ok]
        if failed:
            verdict = f"NOT EXACT ({', '.join(failed)})"
        elif self.not_decoded or self.refused == self.images:
            verdict = "exact (raw outputs only: " + ("no decoder reads them)" if self.not_decoded else
                                                     "the decoder refused every frame)")
        else:
            verdict = "exact"
        return lines + [("verdict", verdict)]


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"image folder '{folder}' does not exist")
    images = sorted(p for p in folder.iterdir() if is_image(p) and p.is_file())
    if not images:
        raise ImageFileError(f"image folder '{folder}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def prepare_frame(image: np.ndarray, readout: Readout, path: Path) -> np.ndarray:
    """An image file's pixels as the sensor delivers them for this model: the device's own rule.

    Pictures OpenCV decodes are B,G,R; .npy frames are taken to be in the sensor's order already.
    """
    order = readout.sensor_order if path.suffix.lower() == ".npy" else "bgr"
    return readout.prepare(image, order)


def plain_input(frames: np.ndarray, manifest: Manifest) -> np.ndarray:
    """The plain model's float input for a batch of sensor frames (N, H, W, C): NCHW, or NHWC for models that take it.

    A Bayer model's frames are mosaics (N, 2H, 2W, 1); its plain input is the plain model on the mini-ISP's
    RGB frame, computed in numpy from the same cells (``edge.isp.sensor_rgb``)."""
    spec = manifest.input
    if manifest.spec.is_bayer:
        x = sensor_rgb(frames, manifest.spec, spec.isp)  # (N, H, W, 3), R, G, B on the 0..255 scale
    else:
        x = frames.astype(np.float32)
    if spec.channel_order != spec.model_channel_order:
        x = x[..., ::-1]
    if spec.code_scale != 1.0:
        x = x * np.float32(spec.code_scale)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.plain_layout == "nhwc":
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)


def _dims(shape) -> list[int | None]:
    """onnxruntime's shape (ints, names, None) with every dimension that is not a fixed size as None."""
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _fits(got, want) -> bool:
    return len(got) == len(want) and all(g is None or w is None or g == w for g, w in zip(_dims(got), want))


def plain_sha256(path: Path) -> str:
    """The digest keyify records (``export.prepare.graph``): sha256 of the model as onnx loads it, external data in."""
    import onnx

    try:
        return hashlib.sha256(onnx.load(str(path)).SerializeToString()).hexdigest()
    except Exception as error:  # onnx raises DecodeError, ValueError, OSError ... for a file it cannot read
        raise ModelError(f"plain model '{path}' cannot be read by onnx ({type(error).__name__})") from None


def check_pair(plain, plain_path: Path, manifest: Manifest, keyed_path: Path) -> None:
    """Refuse, in one line, a plain model that is not the one ``manifest`` was compiled from: its input, its outputs
    (names and fixed sizes), then its sha256 against the manifest's ``plain_sha256``."""
    def refuse(why: str) -> None:
        raise ModelError(f"plain model '{plain_path}' {why}: it is not the model '{keyed_path}' was compiled from; "
                         f"give that one")

    inputs = plain.get_inputs()
    if len(inputs) != 1:
        refuse(f"takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}), the keyed model's plain model one")
    spec = manifest.input
    _, height, width, channels = spec.shape
    channels = 3 if manifest.spec.is_bayer else channels  # a Bayer model's plain model takes the mini-ISP's RGB
    want = [manifest.batch, height, width, channels] if spec.plain_layout == "nhwc" else \
        [manifest.batch, channels, height, width]
    if inputs[0].type != "tensor(float)" or not _fits(inputs[0].shape, want):
        refuse(f"takes {inputs[0].type} {shape_text(_dims(inputs[0].shape))}; the keyed model's plain model takes "
               f"tensor(float) {shape_text(want)}")
    outputs = {o.name: o.shape for o in plain.get_outputs()}
    specs = {o.name: o.shape for o in manifest.outputs}
    if set(outputs) != set(specs):
        refuse(f"has outputs {', '.join(outputs)}; the keyed model's plain model has {', '.join(specs)}")
    for name, shape in specs.items():
        if not _fits(outputs[name], shape):
            refuse(f"gives {name} of shape {shape_text(_dims(outputs[name]))}; the keyed model's plain model gives "
                   f"{shape_text(shape)}")
    digest = plain_sha256(plain_path)
    if digest != manifest.plain_sha256:
        refuse(f"has sha256 {digest[:12]}..., the manifest records {manifest.plain_sha256[:12]}...")


def batch_size(plain, manifest: Manifest, requested: int | None) -> tuple[int, bool]:
    """(frames per run, whether the model fixes it): a fixed-batch model's own, else ``requested`` or 8."""
    first = _dims(plain.get_inputs()[0].shape)[0]
    fixed = manifest.batch or first
    if fixed is None:
        return requested or DEFAULT_BATCH, False
    if requested is not None and requested != fixed:
        raise ModelError(f"the model takes batches of {fixed} (its fixed batch); leave out --batch")
    return fixed, True


def answer_stage(manifest: Manifest, key: MasterKey, settings: TaskConfig | None,
                 fit: str | None = None) -> tuple[Answers | None, str]:
    """The device's answer stage for this model, or (None, why) when no decoder reads its outputs. A decoder that
    ``settings`` (the user's [task]) chose and that refuses the outputs is the user's error, and raised."""
    try:
        answers = Answers.for_manifest(manifest, key, settings or TaskConfig(), fit=fit)
    except ConfigError as error:
        if settings is not None:
            raise
        return None, str(error)
    decoder = answers.decoder
    what = f"{manifest.task or 'task unknown'}: {decoder.name} decoder"
    s = decoder.settings
    if decoder.task not in ("classify", "tensors") and decoder.name != "segment":  # a class map has no thresholds
        what += (f" (score_threshold {s.score_threshold:g}, iou_threshold {s.iou_threshold:g}, max_detections "
                 f"{s.max_detections})")
    return answers, what + " on both models' outputs"


def _run(model, names: list[str] | None, feed, path) -> list[np.ndarray]:
    """A plain session's (``names``, ``feed``) or a keyed model's (``feed``: measurements) outputs; what
    onnxruntime raises becomes one line."""
    try:
        return model.run(names, feed) if names is not None else model.run(feed)
    except KeycamError:
        raise
    except Exception as error:  # onnxruntime's own exception types
        raise ModelError(f"model '{path}' failed to run: {str(error).splitlines()[0]}") from None


def _frames(chunk: list[Path], readout: Readout, size: int, fixed: bool) -> tuple[list, np.ndarray]:
    """(camera sizes, sensor frames) of a chunk of images; a fixed batch padded with the last frame."""
    pictures = [read_frame(p) for p in chunk]
    frames = [prepare_frame(picture, readout, p) for picture, p in zip(pictures, chunk)]
    if fixed:
        frames += [frames[-1]] * (size - len(frames))
    return [(p.shape[1], p.shape[0]) for p in pictures], np.stack(frames)


def _answers(answers: Answers, plain: list[np.ndarray], keyed: list[np.ndarray], names: list[str], frame: Frame,
             checks: dict[str, KindCheck]) -> str | None:
    """One frame's answers: the plain model's outputs decoded, the keyed model's through the answer stage, compared
    into ``checks``. A frame the decoder refuses for both models alike is no difference: its reason is returned."""
    geometry = answers.geometry(frame)
    corner = geometry.to_camera(np.array([0.0, 0.0, 1.0, 1.0]))  # one model pixel in camera pixels
    size = (abs(corner[2] - corner[0]), abs(corner[3] - corner[1]))
    settings = answers.decoder.settings
    context = Context(TOLERANCES.pixels * max(size) + TOLERANCES.rounding, size, settings.score_threshold,
                      settings.iou_threshold, settings.max_detections)
    by_name = dict(zip(names, plain))
    decoded, refused = [], []
    for run in (lambda: answers.decoder.decode([by_name[s.name] for s in answers.specs], geometry),
                lambda: answers(dict(zip(names, keyed)), frame)):
        try:
            decoded.append(run())
        except KeycamError as error:  # a FrameError: the device would skip this frame
            refused.append(str(error))
            decoded.append({"(decoding)": f"refused: {error}"})
    if len(refused) == 2 and refused[0] == refused[1]:
        return refused[0]
    compare_answers(decoded[0], decoded[1], context, checks)
    return None


def verify(plain_path: str | Path, keyed_path: str | Path, key: MasterKey, images: list[Path],
           batch: int | None = None, settings: TaskConfig | None = None, fit: str | None = None) -> VerifyReport:
    """Compare the keyed model with its plain model on ``images`` (module docstring); ``batch``: frames per run of
    a dynamic-batch model; ``settings``: the [task] that decodes the answers (default: the manifest's task);
    ``fit``: the framing, where a configuration overrides the model's (``[model] fit``)."""
    plain_path, keyed_path = Path(plain_path), Path(keyed_path)
    keyed = KeyedModel(keyed_path, key)
    manifest = keyed.manifest
    if manifest.role != "full":
        raise ModelError(f"verify compares a full keyed model with its plain model; '{keyed_path}' is a "
                         f"{manifest.role} model")
    plain = open_session(plain_path, optimisation="disable")
    check_pair(plain, plain_path, manifest, keyed_path)
    size, fixed = batch_size(plain, manifest, batch)
    if manifest.spec.output_bits != 8 and any(p.suffix.lower() != ".npy" for p in images):
        raise ImageFileError(f"the model reads {manifest.spec.output_bits}-bit codes; give .npy frames of that depth")
    answers, what = answer_stage(manifest, key, settings, fit)
    readout = Readout.for_model(manifest, key, fit)
    names, kinds = keyed.output_names, {o.name: o.kind for o in manifest.outputs}
    report = VerifyReport(len(images), size, fixed, [OutputCheck(name) for name in names],
                          decoder=what if answers is not None else "", not_decoded="" if answers is not None else what,
                          fit=readout.fit)
    checks: dict[str, KindCheck] = {}
    for start in range(0, len(images), size):
        chunk = images[start:start + size]
        sizes, frames = _frames(chunk, readout, size, fixed)
        measured = np.stack([readout.measure(f, manifest.epoch) for f in frames])
        raw = _run(keyed, None, measured, keyed_path)
        got = keyed.restore(raw)
        want = _run(plain, names, {plain.get_inputs()[0].name: plain_input(frames, manifest)}, plain_path)
        for i, camera in enumerate(sizes):
            for check, g, w in zip(report.outputs, got, want):
                check.add(g[i:i + 1], w[i:i + 1], kinds.get(check.name, "plain"))
            if answers is not None:
                frame = Frame(measured[i], start + i, 0, chunk[i].name, measured=True, epoch=keyed.epoch,
                              fingerprint=key.fingerprint, source_size=camera)
                refused = _answers(answers, [w[i:i + 1] for w in want], [r[i:i + 1] for r in raw], names, frame,
                                   checks)
                report.refused += refused is not None
                report.refusal = report.refusal or refused or ""
    report.answers = list(checks.values())
    return report
