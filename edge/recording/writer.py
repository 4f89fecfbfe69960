"""One recording file: a frame's measurement, provenance, answer and events, zstd-compressed, crash-tolerant.

Each frame is written as consecutive messages sharing its log time (the frame's ``timestamp_ns``: UTC for live
sources) and its sequence: ``/keycam/frame`` (keycam.Frame, JSON), ``/keycam/measurement`` (foxglove.RawImage),
``/keycam/plain`` (debug only), then, when the frame has an answer, ``/keycam/answers`` (keycam.Answer, JSON) and,
for a detector or segmenter, ``/keycam/detections`` (foxglove.ImageAnnotations), and ``/keycam/events`` when it
produced tracking events. Chunks are zstd-compressed (MCAP's own, level 3) and every chunk carries its CRC; the
file is flushed after each frame, so a process killed at any point leaves every complete chunk readable.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mcap.writer import CompressionType, Writer

from edge.errors import ImageFileError
from edge.frame import Result
from edge.recording.annotations import annotate, draws
from edge.recording.images import encode_image, layout
from edge.recording.schemas import (ANSWERS_TOPIC, DETECTIONS_TOPIC, EVENTS_TOPIC, FORMAT, FRAME_TOPIC,
                                    MEASUREMENT_TOPIC, PLAIN_TOPIC, PROFILE, SCHEMAS)
from edge.tasks.geometry import Geometry
from firmware_sim.spec import ReadoutSpec

log = logging.getLogger(__name__)

LIBRARY = "keycam 0.1.0"
CHUNK_SIZE = 256 * 1024  # bytes of messages a chunk holds before it is compressed and written
RECORD_OVERHEAD = 64  # bytes a message record and its index entry add to the data
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}


def create(path: Path, force: bool = False, private: bool = True):
    """The file, opened for writing: created (never replacing one unless ``force``), mode 0600 whatever the umask
    (measurements and the keyed model together give the picture back; plain debug frames are the picture), and
    never through a symbolic link (``O_NOFOLLOW``: a link at the path is refused, not followed to its target).
    ``private`` is kept for callers of the first API: every recording is private."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_TRUNC if force else os.O_EXCL)
    if force and path.is_symlink():
        raise ImageFileError(f"recording '{path}' is a symbolic link (to '{os.readlink(path)}'); keycam never "
                             f"writes through a link: name the file itself")
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ImageFileError(f"recording '{path}' already exists; choose another name, or pass --force to "
                             f"replace it") from None
    except OSError as error:
        raise ImageFileError(f"cannot record to '{path}': {error.strerror}") from None
    os.fchmod(fd, 0o600)  # a file replaced with --force keeps its old mode otherwise
    return os.fdopen(fd, "wb")


@dataclass(frozen=True)
class Image:
    """An encoded RawImage, with what its channel's metadata says of the codes."""

    data: bytes
    shape: tuple[int, int, int]
    dtype: str
    bits: int
    epoch: int
    masks: str


@dataclass
class Messages:
    """One frame's messages, encoded, in order: (topic, data or Image)."""

    sequence: int
    timestamp_ns: int
    frames: int = 0  # 1 when a measurement is among them
    items: list = field(default_factory=list)

    def add(self, topic: str, data) -> None:
        self.items.append((topic, data))

    @property
    def size(self) -> int:
        """Their bytes before compression, with each record's framing."""
        return sum(len(d.data if isinstance(d, Image) else d) + RECORD_OVERHEAD for _, d in self.items)


class Recorder:
    """Writes measurements (and, only if asked, plain debug frames), answers and events to one MCAP file."""

    def __init__(self, path: str | Path, spec: ReadoutSpec, fingerprint: str, *, chunk_size: int = CHUNK_SIZE,
                 record_plain: bool = False, force: bool = False, compression: str = "zstd",
                 channel_order: str = "rgb", fit: str = "crop") -> None:
        self.path = self.check(path, force=force)
        self.spec, self.fingerprint = spec, fingerprint
        self.record_plain = record_plain
        self.order = "bgr" if channel_order == "bgr" else "rgb"
        self.fit = fit  # the framing the measurements were fitted by, for drawing answers over them
        if record_plain:
            log.warning("RECORDING PLAIN FRAMES to %s (debug flag): anyone with this file sees the scene", self.path)
        self._file = create(self.path, force=force)
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=COMPRESSIONS[compression],
                              enable_data_crcs=True)
        self._writer.start(profile=PROFILE, library=LIBRARY)
        self._spec = json.loads(spec.model_dump_json())
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._accepted = 0  # frames handed to the writer (some may wait in the chunk being filled)
        self._written = 0  # frames whose measurement is in a chunk that reached the file
        self.failed = False  # a write failed (a full disk): the file holds the frames written, no more
        self._writer.add_metadata("keycam", {"fingerprint": fingerprint, "spec": spec.model_dump_json(),
                                             "format": FORMAT})
        self._file.flush()  # the magic and header reach the disk now: a recording killed at once is still MCAP

    @staticmethod
    def check(path: str | Path, force: bool = False) -> Path:
        """Refuse, before anything is written, a recording file keycam must not or cannot write."""
        path = Path(path)
        if path.suffix != ".mcap":
            raise ImageFileError(f"recording '{path}' should end in .mcap")
        if path.is_dir():
            raise ImageFileError(f"recording '{path}' is a folder; name a file ending in .mcap")
        if path.exists() and not force:
            raise ImageFileError(f"recording '{path}' already exists; choose another name, pass --force to replace "
                                 f"it (keycam record), or record into a folder of segments (a path without .mcap)")
        if not path.parent.is_dir():
            raise ImageFileError(f"cannot record to '{path}': directory '{path.parent}' does not exist")
        return path

    @property
    def frames(self) -> int:
        """The frames the recording holds: every frame given, or, once a write failed (a full disk), only those
        whose chunk reached the file, the frames a reader finds."""
        return self._written if self.failed else self._accepted

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def size(self) -> int:
        """Bytes written so far (the chunk being filled is not among them: at most ``chunk_size`` more)."""
        return self._file.tell()

    def _channel(self, topic: str, metadata: dict | None = None) -> int:
        if topic not in self._channels:
            schema = SCHEMAS[topic]
            if schema.name not in self._schemas:
                self._schemas[schema.name] = self._writer.register_schema(schema.name, schema.encoding, schema.data)
            self._channels[topic] = self._writer.register_channel(topic, schema.message_encoding,
                                                                  self._schemas[schema.name], metadata or {})
        return self._channels[topic]

    def _image_channel(self, topic: str, image: Image) -> int:
        height, width, channels = image.shape
        metadata = {"spec": self.spec.model_dump_json(), "fingerprint": self.fingerprint, "height": str(height),
                    "width": str(width), "channels": str(channels), "dtype": image.dtype, "bits": str(image.bits),
                    "layout": layout(channels, image.bits, self.order).name, "first_epoch": str(image.epoch)}
        if image.masks:
            metadata["masks"] = image.masks
        return self._channel(topic, metadata)

    def _image(self, codes: np.ndarray, bits: int, timestamp_ns: int, epoch: int, masks: str) -> Image:
        return Image(encode_image(codes, bits, timestamp_ns, self.order), codes.shape, codes.dtype.name, bits, epoch,
                     masks)

    def frame_messages(self, measurement: np.ndarray, epoch: int, sequence: int, timestamp_ns: int,
                       plain: np.ndarray | None = None, source_size: tuple[int, int] | None = None, masks: str = "",
                       *, monotonic_ns: int = 0, fingerprint: str = "", seal: str = "") -> Messages:
        """A frame's provenance and measurement (and plain frame, with the debug flag), encoded."""
        if measurement.dtype != self.spec.output_dtype or measurement.ndim != 3:
            raise ImageFileError(f"measurement {measurement.shape} {measurement.dtype} does not match the spec "
                                 f"({self.spec.output_dtype}, (H, W, C))")
        if plain is not None and not self.record_plain:
            raise ImageFileError("plain frames are recorded only with the explicit debug flag")
        provenance = {"sequence": sequence, "timestamp_ns": timestamp_ns, "monotonic_ns": monotonic_ns,
                      "epoch": epoch, "fingerprint": fingerprint or self.fingerprint, "masks": masks,
                      "source_size": list(source_size) if source_size else None, "bits": self.spec.output_bits,
                      "channels": measurement.shape[2], "spec": self._spec}
        if seal:
            provenance["seal"] = seal
        found = Messages(sequence, timestamp_ns, frames=1)
        found.add(FRAME_TOPIC, json.dumps(provenance).encode())
        found.add(MEASUREMENT_TOPIC, self._image(measurement, self.spec.output_bits, timestamp_ns, epoch, masks))
        if plain is not None:
            found.add(PLAIN_TOPIC, self._image(plain, self.spec.input_bits, timestamp_ns, epoch, ""))
        return found

    def answer_messages(self, result: Result, found: Messages) -> None:
        """The frame's answer (as the results file has it) and, for a detector or segmenter, its drawing."""
        frame = result.frame
        found.add(ANSWERS_TOPIC, json.dumps(result.to_dict(include_latency=False), sort_keys=True).encode())
        if draws(result.outputs) and frame.image is not None:
            height, width, channels = frame.image.shape
            geometry = Geometry.of(width, height, frame.source_size, self.fit, 2 if self.spec.is_bayer else 1)
            scale = layout(channels, self.spec.output_bits, self.order).scale
            found.add(DETECTIONS_TOPIC, annotate(result.outputs, geometry, scale, frame.timestamp_ns))

    @staticmethod
    def events_messages(events: list, zones: dict | None, found: Messages) -> None:
        """A frame's tracking events (``edge.events``), and the zones' occupancy after it."""
        record = {"sequence": found.sequence, "timestamp_ns": found.timestamp_ns, "events": events, "zones": zones}
        found.add(EVENTS_TOPIC, json.dumps(record, sort_keys=True, default=str).encode())

    def encode(self, result: Result, plain: bool = False) -> Messages:
        """Everything of one result, encoded (``plain``: with its plain frame, debug flag only)."""
        frame = result.frame
        seal = getattr(frame, "seal", None)
        found = self.frame_messages(frame.image, frame.epoch, frame.sequence, frame.timestamp_ns,
                                    plain=frame.plain if plain else None, source_size=frame.source_size,
                                    masks=frame.masks, monotonic_ns=frame.monotonic_ns,
                                    fingerprint=frame.fingerprint, seal=seal.to_hex() if seal is not None else "")
        if result.outputs or result.error is not None:
            self.answer_messages(result, found)
        if getattr(result, "events", None):
            self.events_messages(result.events, getattr(result, "zones", None), found)
        return found

    def add(self, found: Messages) -> None:
        """Write encoded messages, then flush: a chunk the writer finished reaches the file now. A write that fails
        (a full disk) is raised, and the recording counts only the frames whose chunk reached the file."""
        if self.failed:
            raise ImageFileError(f"recording '{self.path}' cannot be written after a failed write")
        written = self._written
        try:
            for topic, data in found.items:
                if isinstance(data, Image):
                    channel, data = self._image_channel(topic, data), data.data
                    self._accepted += found.frames
                else:
                    channel = self._channel(topic)
                before = self._file.tell()
                self._writer.add_message(channel, log_time=found.timestamp_ns, data=data,
                                         publish_time=found.timestamp_ns,
                                         sequence=found.sequence & 0xFFFFFFFF)  # MCAP's is 32-bit; keycam's not
                if self._file.tell() != before:  # a chunk was finished: every measurement given so far is in it
                    written = self._accepted
            self._file.flush()
        except OSError:
            self.failed = True
            raise
        self._written = written

    def write(self, measurement: np.ndarray, epoch: int, sequence: int, timestamp_ns: int,
              plain: np.ndarray | None = None, source_size: tuple[int, int] | None = None, masks: str = "",
              **provenance) -> None:
        """One frame's provenance and measurement (and plain frame, with the debug flag)."""
        self.add(self.frame_messages(measurement, epoch, sequence, timestamp_ns, plain, source_size, masks,
                                     **provenance))

    def write_events(self, events: list, zones: dict | None, sequence: int, timestamp_ns: int) -> None:
        found = Messages(sequence, timestamp_ns)
        self.events_messages(events, zones, found)
        self.add(found)

    def record(self, result: Result, plain: bool = False) -> None:
        """Everything of one result, written and flushed."""
        self.add(self.encode(result, plain))

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._writer.finish()
            self._file.flush()
            self._written = self._accepted
        except OSError:
            self.failed = True
            raise
        finally:
            try:
                self._file.close()
            except OSError:  # the last bytes could not be written: the frames counted are those written before
                self.failed = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
