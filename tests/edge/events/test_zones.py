"""Zones: inside is the bottom centre of the box (on the edge counts), entering takes ``inertia`` consecutive frames
that pass the filters (labels, ``min_area``), leaving is at once; and ``[zones.NAME]`` in the configuration is
strict, with one-line errors that name the key and the fix, refused alike by ``validate-config`` and ``run``."""

from __future__ import annotations

import pytest

from edge.config import Config, load_config
from edge.errors import ConfigError
from edge.events.zones import Presence, Zone, ZoneConfig, polygon_area
from tests.inprocess import keycam

SQUARE = [[100, 100], [200, 100], [200, 200], [100, 200]]


def _zone(name="yard", **settings) -> Zone:
    return Zone(name, ZoneConfig(**{"coordinates": SQUARE, **settings}))


def test_inside_outside_and_on_the_edge():
    zone = _zone()
    assert zone.contains((150, 150)) and zone.contains((100, 150)) and zone.contains((200, 200))
    assert not zone.contains((99.5, 150)) and not zone.contains((150, 201))
    triangle = Zone("t", ZoneConfig(coordinates=[[0, 0], [100, 0], [0, 100]]))
    assert triangle.contains((10, 10)) and not triangle.contains((60, 60))


def test_presence_is_the_bottom_centre_not_the_overlap():
    zone, presence = _zone(inertia=1), Presence()
    presence.update([zone], "person", [120, 20, 180, 150])  # feet inside, head far above the zone
    assert presence.current == ["yard"]
    presence.update([zone], "person", [0, 0, 300, 250])  # covers the zone, feet below it
    assert presence.current == [] and presence.entered == ["yard"]


def test_entering_takes_inertia_consecutive_frames_and_leaving_is_at_once():
    zone, presence = _zone(inertia=3), Presence()
    inside, outside = [140, 100, 160, 150], [140, 250, 160, 300]
    seen = []
    for box in (inside, inside, outside, inside, inside, inside, inside, outside, inside):
        presence.update([zone], "person", box)
        seen.append(bool(presence.current))
    assert seen == [False, False, False, False, False, True, True, False, False]  # back in: inertia again


def test_a_zone_counts_only_its_labels():
    zone, presence = _zone(inertia=1, labels=["car"]), Presence()
    presence.update([zone], "person", [140, 100, 160, 150])
    assert presence.current == []
    presence.update([zone], "car", [140, 100, 160, 150])
    assert presence.current == ["yard"]


def test_min_area_is_checked_to_enter_and_not_again_while_inside():
    zone, presence = _zone(inertia=2, min_area=1000), Presence()
    small, big = [145, 140, 155, 150], [120, 110, 170, 150]  # 100 and 2000 pixels squared
    presence.update([zone], "person", small)
    presence.update([zone], "person", small)
    assert presence.current == []
    presence.update([zone], "person", big)
    presence.update([zone], "person", small)  # a small frame breaks the run before it is in
    presence.update([zone], "person", big)
    assert presence.current == []
    presence.update([zone], "person", big)
    assert presence.current == ["yard"]
    presence.update([zone], "person", small)  # in already: crouching does not take it out
    assert presence.current == ["yard"]


def test_several_zones_keep_the_configuration_order():
    zones = [_zone("b", inertia=1), _zone("a", inertia=1, coordinates=[[0, 0], [300, 0], [300, 300], [0, 300]])]
    presence = Presence()
    presence.update(zones, "person", [140, 100, 160, 150])
    assert presence.current == ["b", "a"] == presence.entered


def test_polygon_area_in_either_order():
    assert polygon_area(SQUARE) == polygon_area(SQUARE[::-1]) == 10000


# -- the configuration ----------------------------------------------------------------------------------------------


def _file(tmp_path, text: str):
    path = tmp_path / "keycam.toml"
    path.write_text("[events]\nenabled = true\n" + text)
    return path


def test_a_zone_in_the_configuration(tmp_path):
    config = load_config(_file(tmp_path, '[zones.drive-way_1]\ncoordinates = [[0, 0], [640.5, 0], [640, 480]]\n'
                                         'labels = ["person"]\nmin_area = 500\ninertia = 1\n'))
    zone = config.zones["drive-way_1"]
    assert zone.coordinates[1] == (640.5, 0.0) and zone.labels == ["person"] and zone.inertia == 1
    assert Config().zones == {} and ZoneConfig(coordinates=SQUARE).inertia == 3  # Frigate's default


BAD = [
    ("[zones.a]\ncoordinates = [[0, 0], [10, 10]]\n", "zones.a.coordinates has 2 point(s); a zone is a polygon: "
                                                      "give at least 3 [x, y] corners"),
    ("[zones.a]\ncoordinates = [[0, 0], [10, 10], [20, 20]]\n", "zones.a.coordinates encloses no area"),
    ("[zones.a]\ncoordinates = [[0, 0], [10, nan], [20, 0]]\n", "zones.a.coordinates.1.1 = nan"),
    ("[zones.a]\ncoordinates = [[0, 0], [10, inf], [20, 0]]\n", "zones.a.coordinates.1.1 = inf"),
    ("[zones.a]\ncoordinates = [[0, 0, 1], [10, 0], [20, 5]]\n", "zones.a.coordinates.0"),
    ('[zones."drive way"]\ncoordinates = [[0, 0], [10, 0], [0, 10]]\n', "[zones.drive way]: a zone's name is 1 to 64 "
                                                                      "letters, digits, '_' or '-'"),
    ("[zones.a]\ncoordinates = [[0, 0], [10, 0], [0, 10]]\ninertia = 0\n", "zones.a.inertia = 0"),
    ("[zones.a]\ncoordinates = [[0, 0], [10, 0], [0, 10]]\nobjects = ['person']\n",
     "unknown key 'zones.a.objects' (allowed here: coordinates, labels, min_area, inertia)"),
    ("[zones.a]\nlabels = []\n", "zones.a.coordinates is missing"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_a_bad_zone_is_refused_in_one_line_naming_its_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_config(_file(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_zones_and_an_events_log_need_tracking_on(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text("[zones.a]\ncoordinates = [[0, 0], [10, 0], [0, 10]]\n")
    with pytest.raises(ConfigError, match=r"\[zones.a\] is set but events.enabled is false; .* enabled = true"):
        load_config(path)
    path.write_text("[events]\npath = 'events.jsonl'\n")
    with pytest.raises(ConfigError, match="events.path is set but events.enabled is false"):
        load_config(path)


def test_validate_config_refuses_what_run_refuses(tmp_path):
    bad = _file(tmp_path, "[zones.a]\ncoordinates = [[0, 0], [10, 10], [20, 20]]\n")
    checked, ran = keycam("validate-config", str(bad)), keycam("run", "--config", str(bad))
    assert checked.returncode != 0 and ran.returncode != 0
    assert "zones.a.coordinates encloses no area" in checked.stderr
    said = [done.stderr.strip().splitlines()[-1].split(": error: ", 1)[1] for done in (checked, ran)]
    assert said[0] == said[1]
    good = _file(tmp_path, "[zones.a]\ncoordinates = [[0, 0], [10, 0], [0, 10]]\n")
    assert keycam("validate-config", str(good)).returncode == 0
