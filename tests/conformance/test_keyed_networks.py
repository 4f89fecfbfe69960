"""Conformance: whole networks, keyed == plain, 100 % top-1 agreement, both layout policies.

Every registered network (export/zoo.py) is tested for free: ResNet-18 at 224, CIFAR ResNet-20,
VGG-16-bn at 32, MobileNetV2 at 224 and a U-Net-style segmentation net at a non-square size.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from export.keyify import KeyifyOptions
from export.zoo import NETWORKS
from tests.export.helpers import TOLERANCE, frames, relative_error, restore, run_both


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_keyed_network_equals_plain(key, name, policy):
    build, (height, width), mean, std = NETWORKS[name]
    options = KeyifyOptions(policy=policy, mean=mean, std=std)
    batch = frames(4, height, width, 3, seed=zlib.crc32(name.encode()) % 1000)  # the same frames in every run
    want, got, keyed = run_both(build(), key, options, batch)
    out_spec = keyed.manifest.outputs[0]
    output = restore(got[0], out_spec, key) if out_spec.kind == "dense" else got[0]
    assert output.shape == want[0].shape
    assert relative_error(output, want[0]) <= TOLERANCE
    # top-1 agreement over classes (per image, or per pixel for the segmentation net): 100 %
    assert np.array_equal(output.argmax(axis=1), want[0].argmax(axis=1))
    if name == "unet" and policy == "fresh":
        assert out_spec.kind == "dense" and out_spec.layout.kind == "layer"


def test_a_wrong_key_gives_other_logits(key, other_key):
    """The keyed ResNet-20 fed measurements made with another key computes something else.

    (Random-weight networks tend to predict one class for every noise image, so chance-level top-1 with a
    wrong key is shown on the trained models, in tests/conformance/test_real_models.py.)
    """
    from export.keyify import keyify
    from tests.export.helpers import plain_input, scramble, session

    build, (height, width), mean, std = NETWORKS["resnet20"]
    plain = build(classes=10)
    options = KeyifyOptions(mean=mean, std=std)
    batch = frames(16, height, width, 3, seed=4)
    want = session(plain, optimise=False).run(None, {"input": plain_input(batch, mean, std)})[0]
    keyed = session(keyify(plain, key, options).model)
    right = keyed.run(None, {"measurement": scramble(batch, key, options)})[0]
    wrong = keyed.run(None, {"measurement": scramble(batch, other_key, options)})[0]
    assert relative_error(right, want) <= TOLERANCE
    assert relative_error(wrong, want) > 100 * TOLERANCE
