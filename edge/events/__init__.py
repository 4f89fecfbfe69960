"""Events: tracked objects across frames, their lifecycle (``new``, ``update``, ``end``) and zones (docs/events.md).

- ``tracker``: identities from Roboflow's ``trackers`` package (ByteTrack or OC-SORT; the events extra), one
  tracker per label, imported only when a run tracks;
- ``objects``: a tracked object's state and when it is worth an event (zones, stationary, a better score);
- ``zones``: ``[zones.NAME]`` polygons in camera pixels, Frigate's presence rules (bottom centre, inertia);
- ``stage``: :class:`Tracking`, the run's one tracking stage, called right after the answer stage by whoever
  answers the frame (the task stage, or the forwarding sink).

The events log is a sink (``edge.sinks.events``: ``[events]``, which also holds the tracking settings).
"""

from edge.events.stage import Tracking
from edge.events.zones import ZoneConfig, check_zones

__all__ = ["Tracking", "ZoneConfig", "check_zones"]
