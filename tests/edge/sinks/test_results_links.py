"""The results and events logs are opened without following a link (issue 26, item 3): a link put at the path
after the start-up checks ran is refused in one line, and its target is never written."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.frame import Frame, Result
from edge.sinks.events import EventsSink
from edge.sinks.results import ResultsSink


@pytest.mark.parametrize("sink", [ResultsSink, EventsSink])
@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_link_at_the_results_path_is_refused_and_its_target_untouched(tmp_path, sink, mode):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "results.jsonl"
    os.symlink(target, link)
    with pytest.raises(ConfigError, match="is a symbolic link .*never writes through a link"):
        sink(link, mode=mode).start()
    assert target.read_text() == "keep me\n"
    dangling = tmp_path / "dangling.jsonl"
    os.symlink(tmp_path / "nowhere.txt", dangling)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        sink(dangling, mode=mode).start()
    assert not (tmp_path / "nowhere.txt").exists()


def test_a_plain_file_is_still_appended_to(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"old": 1}\n')
    frame = Frame(np.zeros((2, 2, 1), np.uint8), 0, 0, "test", measured=True)
    sink = ResultsSink(path, include_latency=False)
    sink.write(Result(frame, {"class": 1}, {}))
    sink.close()
    lines = path.read_text().splitlines()
    assert lines[0] == '{"old": 1}' and len(lines) == 2 and '"class": 1' in lines[1]
