"""Zones: named polygons in camera pixels, and which of them a tracked object is in.

A zone is ``[zones.NAME]`` in the configuration: ``coordinates`` (its corners, ``[[x, y], ...]``, in the pixels of
the frame the camera delivers, as the answers' boxes are), and filters: ``labels`` (only objects of these class
names count), ``min_area`` (a smaller box does not enter) and ``inertia``. The rules are Frigate's:

- an object is *in* a zone when the bottom centre of its box, ``((x0 + x1) / 2, y1)``, is inside the polygon or
  on its edge (OpenCV's ``pointPolygonTest``): where a person stands, not how much of the box overlaps;
- it *enters* once that has held for ``inertia`` consecutive frames in which it was seen (3 by default), each
  passing the filters; the filters are not applied again while it stays in (a person who crouches stays in);
- it *leaves* on the first frame its bottom centre is outside; coming back needs ``inertia`` frames again;
- a frame in which the object was not seen changes nothing.

``current_zones`` are the zones it is in now, ``entered_zones`` every zone it has entered, in order
(:class:`Presence`). A zone's name names MQTT topics, so it is letters, digits, ``_`` and ``-``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

import cv2
import numpy as np
from pydantic import Field

from edge.schema import Section

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
Coordinate = Annotated[float, Field(allow_inf_nan=False)]  # a finite number of camera pixels


class ZoneConfig(Section):
    """``[zones.NAME]``: one zone, a polygon in camera pixels with its filters."""

    coordinates: list[tuple[Coordinate, Coordinate]] = Field(
        description="the polygon's corners in order around it, [[x, y], ...], in the camera frame's pixels (at "
                    "least 3, enclosing an area; unit: pixels)")
    labels: list[str] = Field(default_factory=list, description="only objects of these labels (class names) count "
                                                                "in the zone (empty: every label)")
    min_area: float = Field(default=0.0, ge=0, le=1e9, description="an object enters only with a box of at least "
                                                                   "this area (unit: camera pixels squared)")
    inertia: int = Field(default=3, ge=1, le=1000, description="consecutive frames an object's bottom centre must "
                                                               "be inside before it counts as entered (Frigate's; "
                                                               "unit: frames)")


def polygon_area(points) -> float:
    """The polygon's area (shoelace formula), whatever the order of its corners."""
    corners = np.asarray(points, np.float64).reshape(-1, 2)
    x, y = corners[:, 0], corners[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def check_zones(zones: dict[str, ZoneConfig]) -> None:
    """Refuse a zone the device could not use, in one line naming its key and the fix (``ValueError``)."""
    for name, zone in zones.items():
        if not NAME.fullmatch(name):
            raise ValueError(f"[zones.{name}]: a zone's name is 1 to 64 letters, digits, '_' or '-' (it names MQTT "
                             f"topics); rename the zone")
        where = f"zones.{name}.coordinates"
        if len(zone.coordinates) < 3:
            raise ValueError(f"{where} has {len(zone.coordinates)} point(s); a zone is a polygon: give at least 3 "
                             f"[x, y] corners in camera pixels")
        if polygon_area(zone.coordinates) < 1e-6:
            raise ValueError(f"{where} encloses no area (its corners lie on one line); give the corners in order "
                             f"around the zone")


class Zone:
    """One zone, ready to test points: its polygon as OpenCV takes it, and its filters."""

    def __init__(self, name: str, settings: ZoneConfig) -> None:
        self.name = name
        self.coordinates = [tuple(point) for point in settings.coordinates]
        self.labels = frozenset(settings.labels)
        self.min_area, self.inertia = settings.min_area, settings.inertia
        self._contour = np.asarray(settings.coordinates, np.float32).reshape(-1, 1, 2)  # (k, 1, 2), as OpenCV's

    def applies(self, label: str) -> bool:
        return not self.labels or label in self.labels

    def contains(self, point: tuple[float, float]) -> bool:
        """The point is inside the polygon or on its edge."""
        if not all(math.isfinite(v) for v in point):
            return False
        return cv2.pointPolygonTest(self._contour, (float(point[0]), float(point[1])), False) >= 0


def zones_of(settings: dict[str, ZoneConfig]) -> list[Zone]:
    """The configured zones, in the configuration's order."""
    return [Zone(name, zone) for name, zone in settings.items()]


def bottom_centre(box) -> tuple[float, float]:
    x0, _, x1, y1 = box
    return ((x0 + x1) / 2, y1)


def box_area(box) -> float:
    x0, y0, x1, y1 = box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


class Presence:
    """One tracked object's zones: the frames it has been inside each zone it has not entered yet, the zones it is
    in now and those it has entered (see the module's rules)."""

    def __init__(self) -> None:
        self.inside: dict[str, int] = {}  # consecutive frames inside, passing the filters, before entering
        self.current: list[str] = []
        self.entered: list[str] = []

    def update(self, zones: list[Zone], label: str, box) -> None:
        """The object was seen at ``box`` (camera pixels) in this frame."""
        point, area = bottom_centre(box), box_area(box)
        current = []
        for zone in zones:
            name = zone.name
            if not zone.applies(label) or not zone.contains(point):
                self.inside.pop(name, None)
                continue
            if name in self.current:  # in already: the filters are not applied again
                current.append(name)
                continue
            if area < zone.min_area:
                self.inside.pop(name, None)
                continue
            self.inside[name] = self.inside.get(name, 0) + 1
            if self.inside[name] >= zone.inertia:
                current.append(name)
                if name not in self.entered:
                    self.entered.append(name)
        for name in current:
            self.inside.pop(name, None)
        self.current = current
