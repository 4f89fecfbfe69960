"""The page's panels as JSON: the events, the run's health and the recordings. Read from the page's threads; the
loop's side only ever appended to the feed (``edge.sinks.web.Feed``).

- **Events**: with ``[events]`` on, the tracker's events (``new``, ``update``, ``end``; Frigate's payload, the
  object's state ``after`` it), newest first; without it, each frame's detections. Filtered by label and zone.
- **Health**: what the page sees itself (frames, frame rate and per-stage times over the last seconds, frames
  missing from the sequence, the key's fingerprint and the frame's key epoch, the streams), and what the run
  knows once it is attached (``WebSink.attach``): the source's health (a camera's temperature, its dropped
  frames), the other sinks' summaries, the forwarding spool's depth, the MQTT connection; with ``[metrics]`` on,
  every ``keycam_*`` counter and gauge as Prometheus would scrape it.
- **Recordings**: the ``.mcap`` files of ``[record] path`` (a folder of segments, or one file), oldest first,
  each with its size and the times its summary gives (none for a segment still being written).
"""

from __future__ import annotations

import time
from pathlib import Path

WINDOW_S = 5.0  # the health panel's rates and means are over the last seconds
LISTED = 200  # entries the events panel sends at most


def _entry(record, kind: str, payload: dict) -> dict:
    _, sequence, timestamp_ns, epoch, *_ = record
    return {"kind": kind, "sequence": sequence, "timestamp_ns": timestamp_ns, "epoch": epoch, **payload}


def _from_event(record, event: dict) -> dict:
    state = event.get("after") or event.get("before") or {}
    return _entry(record, "event", {"type": event.get("type"), "id": state.get("id"), "label": state.get("label"),
                                    "score": state.get("top_score", state.get("score")), "box": state.get("box"),
                                    "zones": list(state.get("current_zones") or []),
                                    "entered_zones": list(state.get("entered_zones") or []),
                                    "stationary": state.get("stationary")})


def _from_detection(record, detection: dict) -> dict:
    return _entry(record, "detection", {"type": "detection", "id": detection.get("track"),
                                        "label": str(detection.get("class", detection.get("label", "?"))),
                                        "score": detection.get("score"), "box": detection.get("box"), "zones": []})


def events(records: list, tracking: bool, zones: list[str], label: str = "", zone: str = "",
           limit: int = LISTED) -> dict:
    """The events panel: ``items`` newest first, filtered; the labels seen and the zones configured, for the filters."""
    found = []
    for record in reversed(records):
        outputs, happened = record[4], record[5]
        if tracking:
            found.extend(_from_event(record, event) for event in reversed(happened or []) if isinstance(event, dict))
        else:
            detections = outputs.get("detections") if isinstance(outputs.get("detections"), list) else []
            found.extend(_from_detection(record, d) for d in detections if isinstance(d, dict))
    labels = sorted({str(item["label"]) for item in found if item["label"] is not None})
    chosen = [item for item in found if (not label or str(item["label"]) == label)
              and (not zone or zone in item["zones"] or zone in item.get("entered_zones", []))]
    return {"mode": "events" if tracking else "detections", "labels": labels, "zones": zones,
            "items": chosen[:limit], "total": len(chosen)}


def _rates(recent: list) -> dict:
    now = time.monotonic_ns()
    window = [r for r in recent if now - r[0] <= WINDOW_S * 1e9]
    fps = (len(window) - 1) / ((window[-1][0] - window[0][0]) / 1e9) if len(window) > 1 and \
        window[-1][0] > window[0][0] else 0.0
    stages: dict[str, list[float]] = {}
    for record in window:
        for stage, ms in (record[6] or {}).items():
            stages.setdefault(stage, []).append(ms)
    return {"fps": round(fps, 2), "stage_ms": {k: round(sum(v) / len(v), 3) for k, v in stages.items()},
            "idle_s": round((now - recent[-1][0]) / 1e9, 1) if recent else None}


def _run_counters(registry) -> dict:
    """Every ``keycam_*`` sample of the run's Prometheus registry (``[metrics]`` on), as a scrape would read it."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.startswith("keycam_") and not sample.name.endswith("_created"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[sample.name + (f"{{{labels}}}" if labels else "")] = round(float(sample.value), 4)
    return found


def _sinks(run, page) -> list[dict]:
    found = []
    for sink in getattr(run, "sinks", None) or []:
        if sink is page:
            continue
        entry = {"kind": type(sink).__name__, "summary": sink.summary()}
        if hasattr(sink, "pending"):
            entry["spool"] = sink.pending  # the forwarding sink: frames waiting for the server
        client = getattr(sink, "client", None)
        if callable(getattr(client, "is_connected", None)):
            entry["connected"] = bool(client.is_connected())  # the MQTT sink: the broker
        found.append(entry)
    return found


def health(sink, streams: dict) -> dict:
    recent, _, received, lost = sink.feed.snapshot()
    _, latest = sink.feed.latest()
    frame = latest.frame if latest is not None else None
    run = sink.run
    found = {"frames": received, "lost": lost, **_rates(recent), "fingerprint": sink.context.key.fingerprint,
             "epoch": frame.epoch if frame is not None else None,
             "sequence": frame.sequence if frame is not None else None,
             "origin": frame.origin if frame is not None else None,
             "source_size": list(frame.source_size) if frame is not None and frame.source_size else None,
             "measurement": list(frame.image.shape) if frame is not None and frame.image is not None else None,
             "masks": frame.masks if frame is not None else "",
             "streams": {name: stream.stats() for name, stream in streams.items()},
             "source": run.source.health() if run is not None else None,
             "sinks": _sinks(run, sink) if run is not None else None,
             "counters": _run_counters(sink.registry) if sink.registry is not None else None}
    source = found["source"] or {}
    found["temperature_c"] = source.get("sensor_temperature_celsius")
    return found


def recordings_path(run) -> Path | None:
    """``[record] path`` of the attached run, or None."""
    path = getattr(getattr(getattr(run, "config", None), "record", None), "path", "")
    return Path(path) if path else None


def _summary(path: Path) -> dict:
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as handle:
            summary = make_reader(handle).get_summary()
    except Exception:  # noqa: BLE001 - a segment being written (no footer yet) or damaged: listed without times
        return {"complete": False}
    stats = summary.statistics if summary is not None else None
    if stats is None:
        return {"complete": False}
    return {"complete": True, "start_ns": stats.message_start_time, "end_ns": stats.message_end_time,
            "messages": stats.message_count, "channels": sorted({c.topic for c in summary.channels.values()})}


class Recordings:
    """The recordings panel, with each complete file's summary read once (by name, size and modification time)."""

    def __init__(self) -> None:
        self._read: dict[tuple, dict] = {}

    def files(self, run) -> list[Path]:
        path = recordings_path(run)
        if path is None:
            return []
        if path.is_dir():
            return sorted(p for p in path.glob("*.mcap") if p.is_file())
        return [path] if path.is_file() else []

    def listing(self, run) -> dict:
        path, found = recordings_path(run), []
        for file in self.files(run):
            try:
                stat = file.stat()
            except OSError:  # removed meanwhile (retention)
                continue
            key = (file.name, stat.st_size, stat.st_mtime_ns)
            if key not in self._read:
                self._read[key] = _summary(file)
            found.append({"name": file.name, "bytes": stat.st_size, "modified_ns": stat.st_mtime_ns,
                          **self._read[key]})
        live = {(f["name"], f["bytes"], f["modified_ns"]) for f in found}
        self._read = {k: v for k, v in self._read.items() if k in live}
        return {"path": str(path) if path is not None else None, "files": found}

    def find(self, run, name: str) -> Path | None:
        """The listed recording called ``name`` (only a listed file is ever served), or None."""
        return next((file for file in self.files(run) if file.name == name), None)
