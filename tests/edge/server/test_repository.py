"""Loading a model repository and starting `keycam serve`: every fault named in one line, before serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.server.repository import ModelRepository
from tests.inprocess import keycam


def _copy(repository, tmp_path: Path) -> Path:
    folder, _ = repository
    return Path(shutil.copytree(folder / "repo", tmp_path / "repo"))


@pytest.mark.parametrize("damage, words", [
    (lambda r: shutil.rmtree(r / "fmnist" / "1"), "has no version folder"),
    (lambda r: (r / "fmnist" / "1").rename(r / "fmnist" / "one"), "'one' is not a positive integer"),
    (lambda r: (r / "fmnist" / "1" / "model.onnx").unlink(), "model.onnx' is missing"),
    (lambda r: (r / "fmnist" / "1" / "model.onnx").write_bytes(b"not a model"), "cannot be loaded by onnxruntime"),
    (lambda r: (r / "fmnist").rename(r / "bad name"), "is not a valid model name"),
])
def test_a_damaged_model_is_skipped_in_one_line_and_the_rest_served(repository, tmp_path, damage, words, caplog):
    repo = _copy(repository, tmp_path)
    damage(repo)
    served = ModelRepository(repo)  # an interrupted export of one model must not take the others down
    assert "fmnist" not in served.models and "fmnist_task" in served.models
    assert any(words in reason for reason in served.skipped) and not any("\n" in r for r in served.skipped)
    assert [r.getMessage() for r in caplog.records] == [f"keycam serve: skipped {r}" for r in served.skipped]
    shutil.rmtree(repo / "fmnist_task")  # nothing left to serve: refused, naming what was skipped
    with pytest.raises(ModelError, match="holds no models \\([12] skipped: "):
        ModelRepository(repo)


def test_empty_and_missing_repositories(tmp_path):
    with pytest.raises(ModelError, match="is not a directory; create one with `keycam export triton"):
        ModelRepository(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds no models"):
        ModelRepository(tmp_path / "empty")


def test_versions_latest_wins(repository, tmp_path):
    repo = _copy(repository, tmp_path)
    shutil.copytree(repo / "fmnist_task" / "1", repo / "fmnist" / "10")
    served = ModelRepository(repo)
    assert served.versions("fmnist") == ["1", "10"]
    assert served.get("fmnist").version == "10" and served.get("fmnist", "1").manifest.role == "full"


@pytest.mark.parametrize("arguments, words, status", [
    (["--model-repository", "/nonexistent"], "is not a directory", 1),
    (["--model-repository", ".", "--port", "70000"], "70000 is not a TCP port", 2),
    (["--model-repository", ".", "--max-batch", "0"], "--max-batch: 0 must be 1 or more", 2),
    (["--model-repository", ".", "--token-file", "/nonexistent/token"], "does not exist", 1),
    (["--model-repository", ".", "--max-body-mb", "nan"], "--max-body-mb: 'nan' must be a finite number greater", 2),
    (["--model-repository", ".", "--max-inflight-mb", "inf"], "--max-inflight-mb: 'inf' must be a finite", 2),
    (["--model-repository", ".", "--max-inflight-mb", "0"], "--max-inflight-mb: '0' must be a finite number", 2),
    (["--model-repository", ".", "--max-rows", "0"], "--max-rows: 0 must be 1 or more", 2),
    (["--model-repository", ".", "--max-rows", "many"], "--max-rows: 'many' is not a whole number", 2),
    (["--model-repository", ".", "--max-connections", "0"], "--max-connections: 0 must be 1 or more", 2),
    (["--model-repository", ".", "--header-timeout-s", "-1"], "--header-timeout-s: '-1' must be a finite", 2),
    (["--model-repository", ".", "--body-timeout-s", "soon"], "--body-timeout-s: 'soon' is not a number", 2),
    (["--model-repository", ".", "--keep-alive-s", "nan"], "--keep-alive-s: 'nan' must be a finite", 2),
])
def test_serve_errors_are_one_line(arguments, words, status):
    done = keycam("serve", *arguments, timeout=60)  # in this process (tests/inprocess.py)
    assert done.returncode == status and words in done.stderr and done.stderr.count("\n") == 1, done.stderr
