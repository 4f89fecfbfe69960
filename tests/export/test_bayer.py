"""Keyed models for Bayer specs: scrambled cells (R, Gr, Gb, B) -> the pointwise mini-ISP -> the plain RGB model.

Exactness: the keyed model on the measurement of a mosaic equals the plain model on the mini-ISP's RGB frame
computed in numpy from the same cells (``edge.isp``, through ``edge.lab.verify.plain_input``), to float
tolerance with the same top-1 on every frame, under both policies, with and without the colour matrix and
the gamma, and after an epoch rotation.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest

from edge.isp import isp_rgb
from edge.lab.verify import plain_input, verify
from edge.runtime import KeyedModel
from edge.sensor import simulate_cfa
from edge.transform import AdcTransform
from export.compiler.isp import affine
from export.errors import UnsupportedModel
from export.keyify import IspOptions, KeyifyOptions, keyify
from export.package.save import save
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
from firmware_sim.manifest import IspSpec, Manifest
from firmware_sim.spec import PRESETS
from tests.export.helpers import TOLERANCE, op_model, relative_error, session, weights
from tests.inprocess import keycam

POLICIES = ["fresh", "boundary"]
CCM = (1.62, -0.45, -0.17, -0.31, 1.53, -0.22, 0.02, -0.58, 1.56)  # a typical sensor-to-sRGB matrix
ISPS = {
    "default": None,
    "black-wb": IspOptions(black_level=64, wb_gains=(1.9, 1.0, 1.6)),
    "ccm": IspOptions(black_level=64, wb_gains=(1.9, 1.0, 1.6), ccm=CCM),
    "gamma": IspOptions(black_level=16, gamma=2.2),
    "ccm-gamma-white": IspOptions(black_level=64, wb_gains=(1.9, 1.0, 1.6), ccm=CCM, gamma=2.2, white=700.0),
}


def _mosaics(spec, count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(N, 2H, 2W, 1) sensor frames of random words (codes 0 and the top word included by chance and size)."""
    rng = np.random.default_rng(seed)
    top = 0xFFFF if spec.is_msb else spec.input_max
    return rng.integers(0, top + 1, (count, 2 * height, 2 * width, 1)).astype(spec.input_dtype)


def _both(plain: onnx.ModelProto, key, options: KeyifyOptions, mosaics: np.ndarray):
    """(keyed-from-raw outputs, plain-from-mini-ISP outputs, keyed result)."""
    keyed = keyify(plain, key, options)
    transform = AdcTransform(key, options.spec)
    measured = np.stack([transform(m, options.epoch) for m in mosaics])
    got = session(keyed.model).run(None, {"measurement": measured})[0]
    name = plain.graph.input[0].name
    want = session(plain, optimise=False).run(None, {name: plain_input(mosaics, keyed.manifest)})[0]
    return got, want, keyed


def _assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert relative_error(got, want) <= TOLERANCE
    assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))  # 100 % top-1 agreement


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("isp, spec", [("default", "bayer10"), ("black-wb", "bggr12msb"), ("ccm", "bayer12"),
                                       ("gamma", "bayer12to8"), ("ccm-gamma-white", "bggr10")])
def test_keyed_resnet20_from_raw_equals_plain_from_the_mini_isp(key, policy, isp, spec):
    spec = PRESETS[spec]
    options = KeyifyOptions(spec=spec, policy=policy, mean=CIFAR_MEAN, std=CIFAR_STD, isp=ISPS[isp], epoch=1)
    got, want, keyed = _both(resnet20(), key, options, _mosaics(spec, 6, 32, 32))
    _assert_exact(got, want)
    assert keyed.manifest.input.shape == [None, 32, 32, 4] and keyed.manifest.input.dtype == spec.output_dtype.name
    assert keyed.manifest.input.isp == (ISPS[isp] or IspOptions()).resolve(spec)
    assert keyed.manifest.spec == spec


def _tiny(first: str = "") -> onnx.ModelProto:
    body = first + """  c = Conv <pads=[1,1,1,1]> ({x}, w, b)
  h = Relu(c)
  p = MaxPool <kernel_shape=[2,2], strides=[2,2]> (h)
  g = GlobalAveragePool(p)
  f = Flatten(g)
  y = Gemm(f, fc, fb)
""".format(x="s" if first else "x")
    return op_model(body, ["N", 3, 6, 10], {"w": weights(5, 3, 3, 3), "b": weights(5), "fc": weights(5, 4),
                                             "fb": weights(4)})


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", ["bayer10", "bayer12", "bayer12to8", "bayer10msb", "bayer12msb", "bggr10",
                                  "bggr12msb"])
@pytest.mark.parametrize("isp", sorted(ISPS))
def test_a_tiny_model_for_every_bayer_preset(key, policy, name, isp):
    spec = PRESETS[name]
    options = KeyifyOptions(spec=spec, policy=policy, mean=(120.0, 110.0, 100.0), std=(60.0, 62.0, 64.0),
                            isp=ISPS[isp], epoch=5)
    got, want, _ = _both(_tiny(), key, options, _mosaics(spec, 8, 6, 10, seed=3))
    _assert_exact(got, want)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_model_order_and_a_first_layer_that_is_not_a_conv(key, policy):
    spec = PRESETS["bayer12msb"]
    mosaics = _mosaics(spec, 8, 6, 10, seed=9)
    for plain, order in ((_tiny("  s = Sigmoid(x)\n"), "rgb"), (_tiny(), "bgr"), (_tiny("  s = Sigmoid(x)\n"), "bgr")):
        options = KeyifyOptions(spec=spec, policy=policy, model_order=order, mean=(128.0,), std=(64.0,),
                                isp=ISPS["ccm-gamma-white"])
        got, want, keyed = _both(plain, key, options, mosaics)
        _assert_exact(got, want)
        assert keyed.manifest.input.model_channel_order == order


def test_the_isp_nodes_are_pointwise_and_its_affine_map_is_the_numpy_isp():
    isp = (IspOptions(black_level=64, wb_gains=(1.9, 1.0, 1.6), ccm=CCM)).resolve(PRESETS["bayer10"])
    matrix, bias, top = affine(isp)
    cells = np.random.default_rng(0).integers(0, 1024, (50, 4))
    assert np.allclose(np.clip(cells @ matrix + bias, 0, top), isp_rgb(cells, isp), atol=1e-3)
    keyed = keyify(_tiny(), _key(), KeyifyOptions(spec=PRESETS["bayer10"], isp=IspOptions(gamma=2.2), policy="fresh"))
    ops = [n.op_type for n in keyed.model.graph.node]
    assert ops[:5] == ["Reshape", "Cast", "MatMul", "Clip", "Pow"]  # per token: no positions read


def _key():
    from firmware_sim.keys import MasterKey

    return MasterKey(bytes(range(32)))


@pytest.mark.parametrize("policy", POLICIES)
def test_epoch_rotation_of_a_bayer_model(tmp_path, key, policy):
    spec = PRESETS["bggr12msb"]
    options = KeyifyOptions(spec=spec, policy=policy, mean=CIFAR_MEAN, std=CIFAR_STD, isp=ISPS["ccm-gamma-white"])
    save(keyify(resnet20(), key, options), tmp_path / "e0.onnx")
    save(keyify(resnet20(), key, dataclasses.replace(options, epoch=7)), tmp_path / "e7.onnx")
    mosaics = _mosaics(spec, 3, 32, 32, seed=2)
    measured = np.stack([AdcTransform(key, spec)(m, 7) for m in mosaics])
    rebuilt = KeyedModel(tmp_path / "e0.onnx", key, epoch=7)
    assert rebuilt.epoch == 7 and rebuilt.manifest.epoch_rotation
    got = rebuilt.run(measured)[0]
    assert np.array_equal(got, KeyedModel(tmp_path / "e7.onnx", key).run(measured)[0])
    plain = resnet20()
    want = session(plain, optimise=False).run(None, {"input": plain_input(mosaics, rebuilt.manifest)})[0]
    _assert_exact(got, want)


def test_a_split_bayer_model(key):
    plain = resnet20()
    relu = [n.output[0] for n in plain.graph.node if n.op_type == "Relu"][4]
    spec = PRESETS["bayer12to8"]
    options = KeyifyOptions(spec=spec, policy="boundary", mean=CIFAR_MEAN, std=CIFAR_STD, split_after=relu)
    keyed = keyify(plain, key, options)
    measured = np.stack([AdcTransform(key, spec)(m) for m in _mosaics(spec, 2, 32, 32)])
    features = session(keyed.feature).run(None, {"measurement": measured})[0]
    split = session(keyed.task).run(None, {"features": features})[0]
    assert relative_error(split, session(keyed.model).run(None, {"measurement": measured})[0]) <= 1e-5
    assert keyed.feature_manifest.input.isp is not None


def test_keycam_verify_on_real_photos_made_into_mosaics(tmp_path, key):
    """The lab's verify: real pictures through the device's own rule (fit, CFA), keyed vs plain-from-mini-ISP."""
    import cv2

    from edge.lab.demo import shipped_photo

    onnx.save(resnet20(), tmp_path / "plain.onnx")
    options = KeyifyOptions(spec=PRESETS["bayer12to8"], mean=CIFAR_MEAN, std=CIFAR_STD, isp=ISPS["gamma"])
    save(keyify(resnet20(), key, options), tmp_path / "keyed.onnx")
    photo = cv2.imread(str(shipped_photo()))
    images = []
    for i in range(4):
        images.append(tmp_path / f"crop_{i}.png")
        cv2.imwrite(str(images[-1]), photo[i * 40: i * 40 + 200, i * 50: i * 50 + 200])
    report = verify(tmp_path / "plain.onnx", tmp_path / "keyed.onnx", key, images)
    assert report.images == 4 and report.exact and report.agreement == 1.0


def test_a_simulated_cfa_and_the_isp_give_back_a_grey_picture():
    """A flat grey scene through any phase: the default ISP returns the same grey (the canonical order holds)."""
    for name in ("bayer10", "bggr12msb"):
        spec = PRESETS[name]
        scene = np.full((8, 8, 3), 200, np.uint8)
        mosaic = simulate_cfa(scene, spec.cfa).astype(np.uint16) << (spec.input_bits - 8 + spec.alignment_shift)
        isp = IspOptions().resolve(spec)
        rgb = isp_rgb(spec.cells(mosaic), isp)
        assert np.allclose(rgb, 200 * (1 << (spec.input_bits - 8)) * 255 / spec.output_max)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: IspOptions(wb_gains=(1.0, float("nan"), 1.0)), "--isp-wb 1,nan,1: give 3 finite gains greater than 0"),
        (lambda: IspOptions(wb_gains=(1.0, 1.0)), "--isp-wb 1,1: give 3 finite gains"),
        (lambda: IspOptions(wb_gains=(1.0, 0.0, 1.0)), "--isp-wb 1,0,1"),
        (lambda: IspOptions(ccm=(1.0,) * 8), "--isp-ccm 1,1,1,1,1,1,1,1: give 9 finite numbers"),
        (lambda: IspOptions(gamma=0.0), "--isp-gamma 0.0: the gamma must be a finite number greater than 0"),
        (lambda: IspOptions(black_level=-1.0), "--isp-black -1.0"),
        (lambda: IspOptions(white=float("inf")), "--isp-white inf"),
        (lambda: IspOptions(black_level=1023).resolve(PRESETS["bayer10"]), "not below the spec's top output code 1023"),
    ],
)
def test_bad_isp_options_are_one_line_errors(make, fragment):
    with pytest.raises(UnsupportedModel) as caught:
        make()
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_options_that_do_not_fit_a_bayer_spec_are_refused(key):
    gray = op_model("  y = GlobalAveragePool(x)\n", ["N", 1, 4, 4])
    with pytest.raises(UnsupportedModel, match="mini-ISP gives RGB, the model takes 1 channel"):
        keyify(gray, key, KeyifyOptions(spec=PRESETS["bayer10"]))
    with pytest.raises(UnsupportedModel, match="--channel-order bgr: a Bayer spec's cells are"):
        keyify(_tiny(), key, KeyifyOptions(spec=PRESETS["bayer10"], channel_order="bgr"))
    with pytest.raises(UnsupportedModel, match="the mini-ISP reads Bayer cells; the readout spec .* reads pixels"):
        keyify(_tiny(), key, KeyifyOptions(isp=IspOptions(gamma=2.2)))
    with pytest.raises(UnsupportedModel, match="--isp-black 4095 is not below"):
        keyify(_tiny(), key, KeyifyOptions(spec=PRESETS["bayer12"], isp=IspOptions(black_level=4095)))


def test_keycam_keyify_isp_flags(tmp_path, key_file):
    onnx.save(_tiny(), tmp_path / "tiny.onnx")
    out = tmp_path / "keyed.onnx"
    done = keycam("keyify", str(tmp_path / "tiny.onnx"), "--key", str(key_file), "-o", str(out),
                  "--spec", "bggr12msb", "--layouts", "boundary", "--isp-black", "256", "--isp-wb",
                  "1.9,1,1.6", "--isp-ccm", ",".join(map(str, CCM)), "--isp-gamma", "2.2", "--normalize", "none")
    assert done.returncode == 0, done.stderr
    manifest = Manifest.from_json((tmp_path / "keyed.manifest.json").read_text())
    assert manifest.input.isp == IspSpec(black_level=256, wb_gains=[1.9, 1.0, 1.6], ccm=list(CCM), gamma=2.2,
                                         white=4095 - 256)
    assert json.loads((tmp_path / "keyed.manifest.json").read_text())["spec"]["cfa"] == "BGGR"
    inspect = keycam("inspect", str(out))
    assert "Bayer BGGR cells (R, Gr, Gb, B), 12-bit in (MSB of 16-bit words)" in inspect.stdout
    for flags, fragment in ((["--isp-wb", "1,2"], "must be 3 numbers"), (["--isp-ccm", "1,2,3"], "give 9"),
                            (["--isp-gamma", "-2"], "greater than 0"), (["--isp-black", "nan"], "not a finite"),
                            (["--isp-white", "0"], "greater than 0")):
        bad = keycam("keyify", str(tmp_path / "tiny.onnx"), "--key", str(key_file), "-o",
                     str(tmp_path / "bad.onnx"), "--spec", "bayer10", *flags)
        assert bad.returncode == 2 and fragment in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    pixel = keycam("keyify", str(tmp_path / "tiny.onnx"), "--key", str(key_file), "-o",
                   str(tmp_path / "bad.onnx"), "--isp-gamma", "2.2")
    assert pixel.returncode == 1 and "the mini-ISP reads Bayer cells" in pixel.stderr
    assert len(pixel.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.onnx").exists()
