"""keycam's class against ultralytics' own predict on the same photos and the same YOLO11n-cls export.

Ultralytics' classify export ends in a softmax (its head's export mode): the output rows are probabilities already.
The ``classify`` decoder takes a row that is a probability distribution (every value in [0, 1], summing to 1 within
1e-3) as it is, so its score is ultralytics' ``top1conf``, not the softmax of probabilities (which would be about
1/1000 for 1000 classes)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.tasks import DECODERS, TaskConfig, make_decoder
from tests.edge.tasks import oracle
from tests.edge.tasks.ultralytics_zoo import photos, predict

PHOTOS = {**photos(), **photos(square=False)}


@pytest.fixture(scope="module")
def predicted(shared_models):
    return predict(shared_models, ["yolo11n-cls"], PHOTOS)["yolo11n-cls"]


def test_the_classify_decoder_is_chosen_from_the_manifest(predicted):
    manifest = oracle.manifest_of(predicted.path)
    assert manifest.task == "classify" and len(manifest.labels) == 1000
    assert type(make_decoder(TaskConfig(), manifest)) is DECODERS["classify"]


@pytest.mark.parametrize("photo", list(PHOTOS))
def test_the_class_and_score_equal_ultralytics_predict(predicted, photo):
    frame = predicted.frames[photo]
    (answer,) = oracle.answer(predicted.path, frame).values()
    probabilities = frame.found["probs"]
    assert answer["label"] == int(np.argmax(probabilities)) and answer["class"] == str(answer["label"])
    assert answer["score"] == pytest.approx(float(probabilities.max()), abs=1e-6)


def test_the_photos_give_different_probabilities(predicted):
    scores = {round(float(frame.found["probs"].max()), 4) for frame in predicted.frames.values()}
    assert len(scores) >= 3  # the network answers the photo, not only its own weights
