"""Privacy masks at the readout: the astronaut's face under a mask is not found, the same face outside it is; the
masked region is 0 in the measurement, in a recording of it, and in a key holder's restore; and the readout with the
mask is byte-exact with firmware_sim's (readout spec version 3)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edge.config import Config, ConfigError, ReadoutConfig, load_config
from edge.job import build_job
from edge.lab.demo import shipped_photo
from edge.recording import read_recording
from edge.sources.folder import FolderConfig
from edge.sources.recording import RecordingConfig

FACE = [[170, 60], [300, 60], [300, 240], [170, 240]]  # around the astronaut's face, in the photo's pixels
ELSEWHERE = [[0, 400], [120, 400], [120, 511], [0, 511]]  # the lower left corner: no face there


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("masks")
    shutil.copy(shipped_photo("astronaut"), folder / "astronaut.png")
    return folder


def _run(photos, tmp_path, masks, record: bool = False):
    tmp_path.mkdir()
    config = Config()
    config.source = FolderConfig(path=photos)
    config.readout = ReadoutConfig(masks=masks)
    config.results.path = str(tmp_path / "r.jsonl")
    if record:
        config.record.path = str(tmp_path / "m.mcap")
    job = build_job(config, replay=True)
    job.run()
    (result,) = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    return job, result


def test_a_face_under_a_mask_is_not_found_and_the_same_face_outside_it_is(photos, tmp_path):
    _, seen = _run(photos, tmp_path / "a", [ELSEWHERE])
    assert seen["outputs"]["counts"] == {"face": 1} and seen["masks"].startswith("pm1:")
    job, hidden = _run(photos, tmp_path / "b", [FACE], record=True)
    assert hidden["outputs"]["counts"] == {} and hidden["outputs"]["detections"] == []
    assert hidden["masks"] != seen["masks"]  # each frame says which masks it was read out under
    # the recording holds the masked measurement; a key holder's restore of it is 0 all over the face
    (frame,) = list(read_recording(tmp_path / "b" / "m.mcap"))
    from edge.frame import Frame
    from edge.seal import Opener, Seal

    measured = Frame(frame.image, 0, 0, "astronaut.png", measured=True, epoch=frame.epoch,
                     source_size=frame.source_size, seal=Seal.from_hex(frame.seal))  # the default job reads out sealed
    codes = Opener(job.key, job.readout.spec).open(measured).image  # the key holder opens it
    restored = job.readout.inverse(codes, frame.epoch)  # (128, 128, 3): positions back in order
    assert frame.source_size == (512, 512)
    masks, geometry = job.readout.masks, job.pipeline.answers.geometry(measured)
    covered = masks.positions(geometry, masks.camera(512, 512))  # (128, 128): the positions the mask touches
    assert covered.sum() > 100 and (restored[covered] == 0).all()
    assert restored[~covered].any()  # the rest of the picture is there
    replay = Config()
    replay.source = RecordingConfig(path=tmp_path / "b" / "m.mcap")
    replay.results.path = str(tmp_path / "replayed.jsonl")
    build_job(replay, replay=True).run()
    (again,) = [json.loads(line) for line in (tmp_path / "replayed.jsonl").read_text().splitlines()]
    assert again["masks"] == hidden["masks"] and again["outputs"]["counts"] == {}  # the recording says so too


def test_the_masked_readout_is_firmware_sims_byte_for_byte(photos, key):
    from edge.frame import Frame
    from edge.masks import PrivacyMasks
    from edge.sensor import Readout
    from edge.tasks import Geometry
    from firmware_sim.spec import PRESETS

    picture = cv2.imread(str(photos / "astronaut.png"))
    for preset in ("rgb8", "bayer10"):
        masks = PrivacyMasks.from_settings([FACE, ELSEWHERE])
        fast = Readout(key, PRESETS[preset], 24, 32, masks=masks, fit="letterbox", pad=114)
        slow = Readout(key, PRESETS[preset], 24, 32, masks=masks, fit="letterbox", pad=114, reference=True)
        a, b = fast.read(Frame(picture, 0, 0, "t")), slow.read(Frame(picture, 0, 0, "t"))
        assert a.image.tobytes() == b.image.tobytes() and a.masks == b.masks == masks.digest
        cells = 2 if PRESETS[preset].is_bayer else 1
        positions = masks.positions(Geometry.of(32, 24, (512, 512), "letterbox", cells), masks.camera(512, 512, cells))
        assert positions.any() and (fast.inverse(a.image, 0)[positions] == 0).all()


def test_masks_in_a_configuration_file_are_checked(tmp_path):
    (tmp_path / "ok.toml").write_text("[readout]\nmasks = [[[0, 0], [10, 0], [10, 10]]]\n")
    assert load_config(tmp_path / "ok.toml").readout.privacy_masks().polygons[0][1] == (10.0, 0.0)
    for text, reason in (("[[[0, 0], [10, 0]]]", "readout.masks.0: a polygon needs at least 3 points"),
                         ("[[[0, 0], [10, 10], [20, 20]]]", "encloses no area"),
                         ("[[[0, 0], [10, -1], [20, 20]]]", "readout.masks.0.1.1 = -1")):
        (tmp_path / "bad.toml").write_text(f"[readout]\nmasks = {text}\n")
        with pytest.raises(ConfigError, match=reason.replace("[", r"\[")):
            load_config(tmp_path / "bad.toml")
    (tmp_path / "image.toml").write_text('[readout]\nmask_image = "nowhere.png"\n')
    with pytest.raises(ConfigError, match="readout.mask_image = 'nowhere.png' does not exist"):
        load_config(tmp_path / "image.toml")
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    (tmp_path / "image.toml").write_text(f'[readout]\nmask_image = "{tmp_path / "m.png"}"\n')
    laid = load_config(tmp_path / "image.toml").readout.privacy_masks().camera(60, 40)
    assert laid.sum() == 100 and laid[10:20, 10:20].all()  # laid over the camera frame at its size


def test_a_masked_face_is_absent_from_what_is_forwarded_too(photos, tmp_path, key):
    """The same face, forwarded to a server (keycam serve --key, the sealed readout): what leaves the device was
    read out masked, so the server finds the face only when the mask is elsewhere."""
    from edge import default
    from edge.sinks.forwarding import ForwardConfig
    from export.package.triton import export_triton
    from tests.edge.servers import ThreadServer

    (tmp_path / "models").mkdir()
    keyed = default.default_detector(tmp_path / "models", key)
    key.save(tmp_path / "test.key")
    export_triton(keyed, tmp_path / "repo", "face")
    counts = {}
    with ThreadServer(tmp_path / "repo", key=key) as server:
        for name, masks in (("elsewhere", [ELSEWHERE]), ("face", [FACE])):
            config = Config()
            config.source = FolderConfig(path=photos)
            config.readout = ReadoutConfig(masks=masks)
            config.model.key = str(tmp_path / "test.key")
            config.forward = ForwardConfig(url=server.url, model="face", spool=str(tmp_path / f"spool-{name}"))
            config.results.path = str(tmp_path / f"{name}.jsonl")
            build_job(config, replay=True).run()
            (result,) = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
            assert result.get("error") is None, result
            counts[name] = result["outputs"]["counts"]
    assert counts == {"elsewhere": {"face": 1}, "face": {}}
