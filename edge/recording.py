"""Recordings of private measurements in MCAP: chunked, indexed, timestamped, crash-tolerant.

Layout of a keycam recording (``*.mcap``, profile ``keycam``):

- one channel per stream, topic ``/keycam/measurement`` (and ``/keycam/plain`` only when the user
  asks for plain frames with the explicit debug flag), message encoding ``keycam.frame/1``,
  channel metadata: the readout spec (JSON), the key fingerprint, frame height, width, channels,
  dtype, the key epoch of the first frame (each frame carries its own epoch) and, when the frames were
  read out under privacy masks, the masks' digest (``masks``: a run's masks are fixed);
- one message per frame: log time = the frame's sensor time (ns), sequence = frame number, data =
  a 32-byte header (``KCF2``, key epoch u64, height u32, width u32, channels u16, bits u8, 0 u8, then
  the width and height u32 of the camera frame the measurement was fitted from, which maps detections
  back to camera pixels; little-endian) followed by the (H, W, C) codes, C order, little-endian
  (recordings of the first version have the 24-byte ``KCF1`` header, without the source size);
- a ``keycam`` metadata record (fingerprint, spec, keycam version).

Chunks are small (256 KiB by default), so a process killed mid-write loses at most the chunk in
flight: :func:`read_recording` reads a truncated file sequentially up to its last complete chunk
and warns. Every chunk's CRC is checked on read: a damaged chunk is skipped, never replayed, and
counted with its frames (``RecordingInfo``), so a replay can say what it could not read. Measurements only, by default: no plain frame is ever written unless asked, loudly.
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
from mcap.records import Channel, Chunk, Message, MessageIndex, Metadata
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk
from mcap.writer import CompressionType, Writer

from edge.errors import ImageFileError
from firmware_sim.spec import ReadoutSpec

log = logging.getLogger(__name__)

ENCODING = "keycam.frame/1"
MEASUREMENT_TOPIC = "/keycam/measurement"
PLAIN_TOPIC = "/keycam/plain"
_HEADER = struct.Struct("<4sQIIHBB")  # KCF1: magic, epoch, height, width, channels, bits, reserved
_HEADER2 = struct.Struct("<4sQIIHBBII")  # KCF2: KCF1's fields, then the source frame's width and height
_MAGIC, _MAGIC2 = b"KCF1", b"KCF2"
MCAP_MAGIC = b"\x89MCAP0\r\n"


@dataclass(frozen=True)
class RecordedFrame:
    topic: str
    image: np.ndarray  # (H, W, C)
    epoch: int
    sequence: int
    timestamp_ns: int
    source_size: tuple[int, int] | None = None  # (width, height) of the camera frame it was fitted from


def encode_frame(image: np.ndarray, epoch: int, bits: int, source_size: tuple[int, int] | None = None) -> bytes:
    """One message: KCF2 (with the source frame's size, which maps detections back to camera pixels) or KCF1."""
    height, width, channels = image.shape
    little = np.ascontiguousarray(image.astype(image.dtype.newbyteorder("<"), copy=False)).tobytes()
    if source_size is None:
        return _HEADER.pack(_MAGIC, epoch, height, width, channels, bits, 0) + little
    return _HEADER2.pack(_MAGIC2, epoch, height, width, channels, bits, 0, *source_size) + little


def decode_recorded(data: bytes) -> tuple[np.ndarray, int, tuple[int, int] | None]:
    """(codes (H, W, C), key epoch, source frame size or None) of one message (KCF1 or KCF2)."""
    if len(data) < _HEADER.size:
        raise ImageFileError("recorded frame is shorter than its header")
    magic = data[:4]
    if magic == _MAGIC2 and len(data) >= _HEADER2.size:
        _, epoch, height, width, channels, bits, _, source_w, source_h = _HEADER2.unpack_from(data)
        offset, source = _HEADER2.size, (source_w, source_h)
    elif magic == _MAGIC:
        _, epoch, height, width, channels, bits, _ = _HEADER.unpack_from(data)
        offset, source = _HEADER.size, None
    else:
        raise ImageFileError(f"recorded frame has magic {magic!r}, expected {_MAGIC2!r} or {_MAGIC!r}")
    dtype = np.dtype("<u1" if bits <= 8 else "<u2")
    body = np.frombuffer(data, dtype=dtype, offset=offset)
    if body.size != height * width * channels:
        raise ImageFileError(f"recorded frame holds {body.size} codes, its header says {height}x{width}x{channels}")
    return body.reshape(height, width, channels).astype(dtype.newbyteorder("="), copy=False), epoch, source


def decode_frame(data: bytes) -> tuple[np.ndarray, int]:
    """(codes (H, W, C), key epoch) of one message."""
    image, epoch, _ = decode_recorded(data)
    return image, epoch


class Recorder:
    """Writes measurements (and, only if asked, plain debug frames) to an MCAP file."""

    def __init__(self, path: str | Path, spec: ReadoutSpec, fingerprint: str, *, chunk_size: int = 256 * 1024,
                 record_plain: bool = False, force: bool = False) -> None:
        self.path = self.check(path, force=force)
        self.spec, self.fingerprint = spec, fingerprint
        self.record_plain = record_plain
        if record_plain:
            log.warning("RECORDING PLAIN FRAMES to %s (debug flag): anyone with this file sees the scene", self.path)
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.NONE,
                              enable_data_crcs=True)
        self._writer.start(profile="keycam", library="keycam 0.1.0")
        self._channels: dict[str, int] = {}
        self.frames = 0
        self._writer.add_metadata("keycam", {"fingerprint": fingerprint, "spec": spec.model_dump_json()})
        self._file.flush()  # the magic and header reach the disk now: a recording killed at once is still MCAP

    @staticmethod
    def check(path: str | Path, force: bool = False) -> Path:
        """Refuse, before anything is written, a recording path keycam must not or cannot write."""
        path = Path(path)
        if path.suffix != ".mcap":
            raise ImageFileError(f"recording '{path}' should end in .mcap")
        if path.is_dir():
            raise ImageFileError(f"recording '{path}' is a folder; name a file ending in .mcap")
        if path.exists() and not force:
            raise ImageFileError(f"recording '{path}' already exists; choose another name, or pass --force to "
                                 f"replace it")
        if not path.parent.is_dir():
            raise ImageFileError(f"cannot record to '{path}': directory '{path.parent}' does not exist")
        return path

    def _channel(self, topic: str, image: np.ndarray, epoch: int, masks: str = "") -> int:
        if topic not in self._channels:
            height, width, channels = image.shape
            metadata = {"spec": self.spec.model_dump_json(), "fingerprint": self.fingerprint, "height": str(height),
                        "width": str(width), "channels": str(channels), "dtype": image.dtype.name,
                        "first_epoch": str(epoch)}
            if masks:
                metadata["masks"] = masks
            self._channels[topic] = self._writer.register_channel(topic, ENCODING, 0, metadata)
        return self._channels[topic]

    def write(self, measurement: np.ndarray, epoch: int, sequence: int, timestamp_ns: int,
              plain: np.ndarray | None = None, source_size: tuple[int, int] | None = None, masks: str = "") -> None:
        if measurement.dtype != self.spec.output_dtype or measurement.ndim != 3:
            raise ImageFileError(f"measurement {measurement.shape} {measurement.dtype} does not match the spec "
                                 f"({self.spec.output_dtype}, (H, W, C))")
        channel = self._channel(MEASUREMENT_TOPIC, measurement, epoch, masks)
        self._writer.add_message(channel, log_time=timestamp_ns, data=encode_frame(measurement, epoch,
                                 self.spec.output_bits, source_size), publish_time=timestamp_ns, sequence=sequence)
        if plain is not None:
            if not self.record_plain:
                raise ImageFileError("plain frames are recorded only with the explicit debug flag")
            channel = self._channel(PLAIN_TOPIC, plain, epoch)
            self._writer.add_message(channel, log_time=timestamp_ns, data=encode_frame(plain, epoch,
                                     self.spec.input_bits), publish_time=timestamp_ns, sequence=sequence)
        self.frames += 1

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._writer.finish()
        finally:
            self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


def read_recording(path: str | Path, topic: str = MEASUREMENT_TOPIC,
                   info: RecordingInfo | None = None) -> Iterator[RecordedFrame]:
    """The frames of one topic, in recorded order, every chunk's CRC checked.

    A damaged chunk (its CRC does not match) is skipped and counted with the frames it held; a frame
    that does not decode is skipped and counted; a truncated file yields its complete chunks. What was
    skipped is in ``info`` (``info.describe`` says it in one line); nothing damaged is ever yielded.
    """
    path = check_recording(path)
    info = info if info is not None else RecordingInfo()
    with open(path, "rb") as handle:
        known = _summary(handle, topic)
        channels: dict[int, str] = dict(known[0]) if known else {}
        info.expected = known[1] if known else None
        counting_damage = False  # the message indexes after a damaged chunk count its frames
        try:
            for record in StreamReader(handle, skip_magic=False, emit_chunks=True, validate_crcs=True).records:
                if isinstance(record, Chunk):
                    try:
                        inner = breakup_chunk(record, validate_crc=True)
                    except (CRCValidationError, McapError, struct.error, ValueError, EOFError):
                        info.damaged_chunks += 1
                        counting_damage = True
                        continue
                    counting_damage = False
                    for item in inner:
                        yield from _frames(item, channels, topic, info, path)
                elif isinstance(record, MessageIndex):
                    if counting_damage and channels.get(record.channel_id) == topic:
                        info.damaged_frames += len(record.records)
                else:
                    yield from _frames(record, channels, topic, info, path)
        except CRCValidationError:  # the data section's CRC: damage the chunk CRCs did not already explain
            if not info.damaged:
                info.damaged_other += 1
        except (McapError, EOFError, struct.error, ValueError):
            info.truncated = True  # said by info.describe (the run's summary), not logged twice
    if info.damaged or info.truncated:
        log.debug("%s", info.describe(path))


def _frames(record, channels: dict[int, str], topic: str, info: RecordingInfo, path: Path) -> Iterator[RecordedFrame]:
    if isinstance(record, Channel):
        channels[record.id] = record.topic
        if record.topic == topic:
            info.masks = record.metadata.get("masks", "")
        if record.topic == topic and record.message_encoding != ENCODING:
            raise ImageFileError(f"recording '{path}': channel {topic} is {record.message_encoding}, not {ENCODING}")
    elif isinstance(record, Metadata) and record.name == "keycam":
        try:
            info.fingerprint = record.metadata.get("fingerprint", "")
            info.spec = ReadoutSpec.model_validate(json.loads(record.metadata["spec"]))
        except (KeyError, ValueError):  # a damaged metadata record: the data section CRC reports it
            info.damaged_other += 1
    elif isinstance(record, Message) and channels.get(record.channel_id) == topic:
        try:
            image, epoch, source = decode_recorded(record.data)
        except ImageFileError:
            info.damaged_frames += 1
            return
        info.frames += 1
        yield RecordedFrame(topic, image, epoch, record.sequence, record.log_time, source)
