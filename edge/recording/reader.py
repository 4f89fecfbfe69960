"""Reading recordings back, both formats, every chunk's CRC checked, damage counted, never replayed.

A frame of the second format is two messages with one sequence: its ``/keycam/frame`` provenance, then its image
(``/keycam/measurement`` or ``/keycam/plain``, a ``foxglove.RawImage``); an image whose provenance was lost (in a
damaged chunk) is counted as damaged, never guessed. A frame of the first format is one ``keycam.frame/1``
message (``edge.recording.legacy``).
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mcap.exceptions import McapError
from mcap.reader import SeekingReader
from mcap.records import Channel, Chunk, Message, MessageIndex, Metadata, Schema
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk
from zstandard import ZstdError

from edge.errors import ImageFileError
from edge.recording.images import decode_image
from edge.recording.legacy import ENCODING as LEGACY, decode_recorded
from edge.recording.schemas import FRAME_TOPIC, MEASUREMENT_TOPIC, RAW_IMAGE
from firmware_sim.spec import ReadoutSpec

log = logging.getLogger(__name__)

MCAP_MAGIC = b"\x89MCAP0\r\n"
_KEPT = 64  # provenance messages waiting for their image (they are consecutive: this is plenty)


@dataclass(frozen=True)
class RecordedFrame:
    topic: str
    image: np.ndarray  # (H, W, C)
    epoch: int
    sequence: int
    timestamp_ns: int
    source_size: tuple[int, int] | None = None  # (width, height) of the camera frame it was fitted from
    fingerprint: str = ""  # the key it was measured with ("": the recording's, first format)
    masks: str = ""  # the privacy masks' digest ("": none, or the channel's, first format)
    monotonic_ns: int = 0
    seal: str = ""  # a sealed measurement's seal, header hex:tag hex


@dataclass
class RecordingInfo:
    """What a read found besides the frames: the recording's key and spec, and the damage it skipped."""

    fingerprint: str = ""
    masks: str = ""  # the digest of the privacy masks the frames were read out under ("": none)
    spec: ReadoutSpec | None = None
    truncated: bool = False  # the file ends before its summary (a process killed mid-write)
    frames: int = 0  # frames of the topic read
    damaged_chunks: int = 0  # chunks whose CRC did not match (their frames skipped)
    damaged_frames: int = 0  # frames lost in those chunks, or undecodable
    damaged_other: int = 0  # damage outside the chunks (the data section's CRC)
    expected: int | None = None  # frames of the topic the summary says the file holds
    files: int = 0  # files read (a folder of segments: more than one)

    @property
    def damaged(self) -> bool:
        return bool(self.damaged_chunks or self.damaged_frames or self.damaged_other)

    @property
    def lost(self) -> int | None:
        """Frames the summary promises that were not read (None without a summary)."""
        return None if self.expected is None else max(0, self.expected - self.frames)

    def describe(self, path: Path) -> str | None:
        """One line about damage or truncation, or None for an intact file."""
        if not (self.damaged or self.truncated or self.lost):
            return None
        parts = []
        if self.damaged_chunks:
            parts.append(f"{self.damaged_chunks} damaged chunk{'s' * (self.damaged_chunks != 1)} "
                         f"({self.damaged_frames} frames) skipped")
        elif self.damaged_frames:
            parts.append(f"{self.damaged_frames} damaged frames skipped")
        if self.damaged_other:
            parts.append("damage outside the frames (metadata)")
        if self.truncated:
            parts.append("the file ends early (the recorder was killed): read up to its last complete chunk")
        elif self.lost:
            parts.append(f"{self.lost} of the {self.expected} frames the summary lists were not read")
        return f"recording '{path}': {self.frames} frames read; " + "; ".join(parts)


def check_recording(path: str | Path) -> Path:
    """The path of a readable MCAP file, or one ImageFileError saying why not (checked before any frame)."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"recording '{path}' does not exist or is not a file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(MCAP_MAGIC))
    except OSError as error:
        raise ImageFileError(f"recording '{path}' cannot be read: {error.strerror}") from None
    if magic != MCAP_MAGIC:
        what = "is empty" if not magic else "has no MCAP magic at its start"
        raise ImageFileError(f"'{path}' is not an MCAP recording (it {what}); give a recording keycam made")
    return path


def _summary(handle, topic: str):
    """(channel id -> topic, frames of ``topic``) from the file's summary section, or None when it has none."""
    try:
        summary = SeekingReader(handle).get_summary()
    except Exception:  # noqa: BLE001 - a truncated or damaged summary: read the file as a stream instead
        summary = None
    finally:
        handle.seek(0)
    if summary is None:
        return None
    channels = {cid: c.topic for cid, c in summary.channels.items()}
    wanted = [cid for cid, name in channels.items() if name == topic]
    counts = summary.statistics.channel_message_counts if summary.statistics else {}
    return channels, (sum(counts.get(cid, 0) for cid in wanted) if summary.statistics else None)


def frame_count(path: str | Path, topic: str = MEASUREMENT_TOPIC) -> int | None:
    """The frames a finished recording holds, from its summary (the official reader's), without reading them;
    None for a file without a summary (one still being written, or cut short)."""
    with open(check_recording(path), "rb") as handle:
        known = _summary(handle, topic)
    return known[1] if known else None


class _Frames:
    """Turns one file's records into the frames of one topic (both formats), counting what it cannot use."""

    def __init__(self, path: Path, topic: str, info: RecordingInfo, channels: dict[int, str]) -> None:
        self.path, self.topic, self.info = path, topic, info
        self.topics = dict(channels)  # channel id -> topic
        self.kinds: dict[int, str] = {}  # channel id of the topic -> "legacy" or "image"
        self.channel_counts: dict[int, int] = {}  # channel id of the topic -> codes per position
        self.schemas: dict[int, str] = {}  # schema id -> name
        self.provenance: dict[int, dict] = {}  # sequence (32-bit) -> keycam.Frame, waiting for its image

    def channel(self, record: Channel) -> None:
        self.topics[record.id] = record.topic
        if record.topic != self.topic:
            return
        self.info.masks = record.metadata.get("masks", self.info.masks)
        if record.message_encoding == LEGACY:
            self.kinds[record.id] = "legacy"
        elif record.message_encoding == "protobuf" and self.schemas.get(record.schema_id) == RAW_IMAGE.name:
            self.kinds[record.id] = "image"
            self.channel_counts[record.id] = int(record.metadata.get("channels", "0") or 0)
        else:
            raise ImageFileError(f"recording '{self.path}': channel {self.topic} is {record.message_encoding} "
                                 f"({self.schemas.get(record.schema_id, 'no schema')}), not {RAW_IMAGE.name} or "
                                 f"{LEGACY}")

    def metadata(self, record: Metadata) -> None:
        if record.name != "keycam":
            return
        try:
            self.info.fingerprint = record.metadata.get("fingerprint", "")
            self.info.spec = ReadoutSpec.model_validate(json.loads(record.metadata["spec"]))
        except (KeyError, ValueError):  # a damaged metadata record: the data section CRC reports it
            self.info.damaged_other += 1

    def message(self, record: Message) -> Iterator[RecordedFrame]:
        topic = self.topics.get(record.channel_id)
        if topic == FRAME_TOPIC:
            try:
                self.provenance[record.sequence] = json.loads(record.data)
            except ValueError:
                return  # its image finds no provenance and is counted there
            if len(self.provenance) > _KEPT:
                self.provenance.pop(next(iter(self.provenance)))
            return
        if topic != self.topic:
            return
        try:
            frame = self._decode(record)
        except (ImageFileError, KeyError, TypeError, ValueError):
            self.info.damaged_frames += 1
            return
        self.info.frames += 1
        yield frame

    def _decode(self, record: Message) -> RecordedFrame:
        if self.kinds.get(record.channel_id) == "legacy":
            image, epoch, source = decode_recorded(record.data)
            return RecordedFrame(self.topic, image, epoch, record.sequence, record.log_time, source,
                                 self.info.fingerprint, self.info.masks)
        about = self.provenance.pop(record.sequence, None)
        if about is None:
            raise ImageFileError(f"recording '{self.path}': frame {record.sequence} has no provenance")
        # the frame's own channel count first: the channel's metadata is the first frame's
        image = decode_image(record.data, about.get("channels") or self.channel_counts.get(record.channel_id))
        source = tuple(about["source_size"]) if about.get("source_size") else None
        return RecordedFrame(self.topic, image, int(about["epoch"]), int(about["sequence"]), record.log_time, source,
                             about.get("fingerprint", ""), about.get("masks", ""), int(about.get("monotonic_ns", 0)),
                             about.get("seal", ""))

    def records(self, records) -> Iterator[RecordedFrame]:
        for record in records:
            if isinstance(record, Schema):
                self.schemas[record.id] = record.name
            elif isinstance(record, Channel):
                self.channel(record)
            elif isinstance(record, Metadata):
                self.metadata(record)
            elif isinstance(record, Message):
                yield from self.message(record)


def read_recording(path: str | Path, topic: str = MEASUREMENT_TOPIC,
                   info: RecordingInfo | None = None) -> Iterator[RecordedFrame]:
    """The frames of one topic, in recorded order, every chunk's CRC checked.

    A damaged chunk (its CRC does not match) is skipped and counted with the frames it held; a frame
    that does not decode is skipped and counted; a truncated file yields its complete chunks. What was
    skipped is in ``info`` (``info.describe`` says it in one line); nothing damaged is ever yielded.
    """
    path = check_recording(path)
    info = info if info is not None else RecordingInfo()
    info.files += 1
    with open(path, "rb") as handle:
        known = _summary(handle, topic)
        frames = _Frames(path, topic, info, known[0] if known else {})
        first = info.files == 1
        counted = known is not None and known[1] is not None and (first or info.expected is not None)
        info.expected = (0 if first else info.expected or 0) + known[1] if counted else None
        yield from _stream(handle, frames, info)
    if info.damaged or info.truncated:
        log.debug("%s", info.describe(path))


def _stream(handle, frames: _Frames, info: RecordingInfo) -> Iterator[RecordedFrame]:
    counting_damage = False  # the message indexes after a damaged chunk count its frames
    try:
        for record in StreamReader(handle, skip_magic=False, emit_chunks=True, validate_crcs=True).records:
            if isinstance(record, Chunk):
                try:
                    inner = breakup_chunk(record, validate_crc=True)
                except (CRCValidationError, McapError, ZstdError, struct.error, ValueError, EOFError):
                    info.damaged_chunks += 1
                    counting_damage = True
                    continue
                counting_damage = False
                yield from frames.records(inner)
            elif isinstance(record, MessageIndex):
                if counting_damage and frames.topics.get(record.channel_id) == frames.topic:
                    info.damaged_frames += len(record.records)
            else:
                yield from frames.records([record])
    except CRCValidationError:  # the data section's CRC: damage the chunk CRCs did not already explain
        if not info.damaged:
            info.damaged_other += 1
    except (McapError, EOFError, struct.error, ValueError):
        info.truncated = True  # said by info.describe (the run's summary), not logged twice
