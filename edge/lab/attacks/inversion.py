"""Feature inversion at the split: how much of the picture a task server can rebuild from the features it gets.

``keycam keyify --split-after T`` cuts a keyed model at tensor T: the feature model runs on the device, the task
model on a server (export/compiler/split.py). Under ``boundary`` (the default policy) the features leave the
device as (N, HW, C) tokens in a key-derived layout of their own, and the task model begins by gathering them
back into natural order: so the task server holds, in its own memory, the plain network's feature map at T,
unscrambled (:func:`task_side_features` does what the task model does, and shows it). Sealing the readout changes
nothing here: the seal is opened before the feature model, and features are not sealed.

The attacker (a curious task server) wants the picture back. It knows the plain network (keycam's shipped models
are public, and so is any pretrained backbone), so it can compute the features of any public picture and train
an *inverter*, a small decoder from features at T to pictures (:func:`train_inverter`, PyTorch, imported only
when it runs), then apply it to the features it receives. Mean squared error on [0, 1] pictures (what PSNR
scores); Adam; the budget (pictures, epochs) is the caller's.

The decoder (:func:`Inverter`): a stem (a 1 x 1 convolution when the map is at least a quarter of the picture's
size, otherwise a linear layer to a 64-channel map at a quarter of it), then x2 bilinear upsampling steps, each
with a 3 x 3 convolution and ReLU, until the picture's size is reached (32 channels at 8 x 8 and below, 16
above: small, so that it trains in minutes on two CPU cores), a bilinear resize to the exact size, and two 3 x 3 convolutions to the picture's channels
(sigmoid). Scored by PSNR and SSIM against the true pictures (:func:`quality`), beside two uninformed guesses
(:func:`baselines`): the picture with its positions scrambled (a measurement taken as a picture) and the training
pictures' mean; and, where labels are known, the mean training picture of the true class (what the class alone
gives).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edge.errors import LabError
from edge.lab.attacks.finetune import fit, require_torch


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def tensor_of(model: onnx.ModelProto, name: str) -> str:
    """The tensor ``--split-after`` means by ``name``: a tensor, or the node that makes it (its first output)."""
    outputs = {o for node in model.graph.node for o in node.output}
    if name in outputs:
        return name
    node = next((n for n in model.graph.node if n.name == name), None)
    if node is None:
        raise LabError(f"no node or tensor {name!r} in the model")
    return node.output[0]


def split_features(model: onnx.ModelProto, tensor: str, inputs: np.ndarray, batch: int = 500) -> np.ndarray:
    """The plain ``model``'s tensor ``tensor`` (or node's output) for float ``inputs`` (the model's own input form),
    as float32."""
    tensor = tensor_of(model, tensor)
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    if tensor not in {o.name for o in exposed.graph.output}:
        exposed.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    session = _session(exposed)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run([tensor], {name: inputs[i:i + batch]})[0]
                           for i in range(0, len(inputs), batch)]).astype(np.float32)


def task_side_features(feature_model: onnx.ModelProto, task_model: onnx.ModelProto, measurements: np.ndarray,
                       shape: tuple[int, int, int]) -> np.ndarray:
    """What a ``boundary`` task server holds: the device's features put back in natural order by the task model's
    own first gather, as (N, C, H, W) (``shape``: (C, H, W) of the split tensor)."""
    from onnx import numpy_helper

    session = _session(feature_model)
    tokens = session.run(None, {session.get_inputs()[0].name: measurements})[0]  # (N, HW, C), a layout of its own
    initializers = {i.name: i for i in task_model.graph.initializer}
    first = next((n for n in task_model.graph.node if n.op_type == "Gather" and n.input[0] == session.get_outputs()[0]
                  .name and n.input[1] in initializers), None)
    if first is None:
        raise LabError("the task model does not begin by gathering the features: not a boundary split")
    natural = np.take(tokens, numpy_helper.to_array(initializers[first.input[1]]).astype(np.int64), axis=1)
    channels, height, width = shape
    return np.ascontiguousarray(natural.transpose(0, 2, 1).reshape(len(natural), channels, height, width))


def _body_channels(size: int) -> int:
    return 32 if size <= 8 else 16


def Inverter(feature_shape: tuple[int, ...], picture_shape: tuple[int, int, int]):  # noqa: N802 - a class factory
    """A decoder from features of ``feature_shape`` ((C,), (C, H, W)) to pictures (C, H, W) in [0, 1]."""
    torch = require_torch()
    nn = torch.nn
    channels = feature_shape[0]
    size = feature_shape[1] if len(feature_shape) == 3 else 1
    out_channels, height, width = picture_shape
    if size * 4 >= height:
        stem, at = nn.Sequential(nn.Conv2d(channels, _body_channels(size), 1), nn.ReLU()), size
    else:
        at = max(1, height // 4)
        stem = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(feature_shape)), 64 * at * at), nn.ReLU(),
                             nn.Unflatten(1, (64, at, at)))
    layers, current = [stem], stem[0].out_channels if isinstance(stem[0], nn.Conv2d) else 64
    while at < height:
        at *= 2
        step = _body_channels(at)
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                   nn.Conv2d(current, step, 3, padding=1), nn.ReLU()]
        current = step
    layers += [nn.Upsample(size=(height, width), mode="bilinear", align_corners=False),
               nn.Conv2d(current, current, 3, padding=1), nn.ReLU(), nn.Conv2d(current, out_channels, 3, padding=1),
               nn.Sigmoid()]
    return nn.Sequential(*layers)


def _as_maps(features: np.ndarray) -> np.ndarray:
    return features if features.ndim == 4 else features.reshape(len(features), -1)


def train_inverter(features: np.ndarray, pictures: np.ndarray, epochs: int, batch: int = 128,
                   learning_rate: float = 2e-3, seed: int = 0, progress=None):
    """An :func:`Inverter` trained on (features (N, ...), pictures (N, H, W, C) uint8); returns the module."""
    torch = require_torch()
    if len(features) != len(pictures) or len(features) == 0 or epochs < 1:
        raise LabError(f"{len(features)} features, {len(pictures)} pictures, {epochs} epochs: give as many features "
                       "as pictures, at least one, and at least one epoch")
    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(_as_maps(features), dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(pictures.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0)
    module = Inverter(tuple(x.shape[1:]), tuple(y.shape[1:]))
    return fit(module, module.parameters(), x, y, torch.nn.functional.mse_loss, epochs, batch, learning_rate, seed,
               progress)


def invert(module, features: np.ndarray, batch: int = 500) -> np.ndarray:
    """The pictures (N, H, W, C) uint8 the trained inverter makes of ``features``."""
    torch = require_torch()
    module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(features), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(_as_maps(features[start:start + batch]), dtype=np.float32))
            out.append(module(chunk).numpy())
    return np.clip(np.concatenate(out).transpose(0, 2, 3, 1) * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Score:
    psnr: float  # dB, mean over the pictures
    ssim: float  # mean over the pictures
    psnr_std: float = 0.0
    ssim_std: float = 0.0


def quality(estimates: np.ndarray, truths: np.ndarray) -> Score:
    """Mean PSNR and SSIM (and their spread over the pictures) of (N, H, W, C) uint8 estimates."""
    from skimage.metrics import structural_similarity

    from edge.lab.attacks.reassembly import psnr

    p = [psnr(e.astype(np.float64), t.astype(np.float64), 255.0) for e, t in zip(estimates, truths)]
    s = [structural_similarity(e.astype(np.float64), t.astype(np.float64), data_range=255.0, channel_axis=2,
                               win_size=7) for e, t in zip(estimates, truths)]
    with np.errstate(invalid="ignore"):  # identical pictures: inf dB, whose spread is not a number
        return Score(float(np.mean(p)), float(np.mean(s)), float(np.std(p)), float(np.std(s)))


def baselines(train_pictures: np.ndarray, test_pictures: np.ndarray, seed: int = 0,
              labels: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Score]:
    """Uninformed guesses: each test picture with its positions scrambled, and the training pictures' mean; with
    ``labels`` (training labels, test labels), also the mean training picture of each test picture's class: what
    knowing the class alone gives (a split whose features give no more than this gives the task, not the picture)."""
    rng = np.random.default_rng(seed)
    count, height, width, channels = test_pictures.shape
    flat = test_pictures.reshape(count, height * width, channels)
    scrambled = np.stack([f[rng.permutation(height * width)] for f in flat]).reshape(test_pictures.shape)
    mean = np.broadcast_to(np.round(train_pictures.mean(axis=0)).astype(np.uint8), test_pictures.shape)
    out = {"scrambled picture": quality(scrambled, test_pictures), "mean picture": quality(mean, test_pictures)}
    if labels is not None:
        train_labels, test_labels = (np.asarray(x) for x in labels)
        missing = sorted(set(test_labels.tolist()) - set(train_labels.tolist()))
        if missing:
            raise LabError(f"test classes {missing} have no training picture: the class-mean guess needs one each")
        means = {c: np.round(train_pictures[train_labels == c].mean(axis=0)).astype(np.uint8)
                 for c in set(test_labels.tolist())}
        out["class-mean picture"] = quality(np.stack([means[c] for c in test_labels.tolist()]), test_pictures)
    return out
