"""Recordings of private measurements in MCAP: chunked, indexed, timestamped, crash-tolerant.

Layout of a keycam recording (``*.mcap``, profile ``keycam``):

- one channel per stream, topic ``/keycam/measurement`` (and ``/keycam/plain`` only when the user
  asks for plain frames with the explicit debug flag), message encoding ``keycam.frame/1``,
  channel metadata: the readout spec (JSON), the key fingerprint, frame height, width, channels,
  dtype and the key epoch of the first frame (each frame carries its own epoch);
- one message per frame: log time = the frame's sensor time (ns), sequence = frame number, data =
  a 24-byte header (``KCF1``, key epoch u64, height u32, width u32, channels u16, bits u8, 0 u8;
  little-endian) followed by the (H, W, C) codes, C order, little-endian;
- a ``keycam`` metadata record (fingerprint, spec, keycam version).

Chunks are small (256 KiB by default), so a process killed mid-write loses at most the chunk in
flight: :func:`read_recording` reads a truncated file sequentially up to its last complete chunk
and warns. Measurements only, by default: no plain frame is ever written unless asked, loudly.
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
from mcap.records import Channel, Message, Metadata
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

from edge.errors import ImageFileError
from firmware_sim.spec import ReadoutSpec

log = logging.getLogger(__name__)

ENCODING = "keycam.frame/1"
MEASUREMENT_TOPIC = "/keycam/measurement"
PLAIN_TOPIC = "/keycam/plain"
_HEADER = struct.Struct("<4sQIIHBB")  # magic, epoch, height, width, channels, bits, reserved
_MAGIC = b"KCF1"


@dataclass(frozen=True)
class RecordedFrame:
    topic: str
    image: np.ndarray  # (H, W, C)
    epoch: int
    sequence: int
    timestamp_ns: int


def encode_frame(image: np.ndarray, epoch: int, bits: int) -> bytes:
    height, width, channels = image.shape
    little = image.astype(image.dtype.newbyteorder("<"), copy=False)
    return _HEADER.pack(_MAGIC, epoch, height, width, channels, bits, 0) + np.ascontiguousarray(little).tobytes()


def decode_frame(data: bytes) -> tuple[np.ndarray, int]:
    if len(data) < _HEADER.size:
        raise ImageFileError("recorded frame is shorter than its header")
    magic, epoch, height, width, channels, bits, _ = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ImageFileError(f"recorded frame has magic {magic!r}, expected {_MAGIC!r}")
    dtype = np.dtype("<u1" if bits <= 8 else "<u2")
    body = np.frombuffer(data, dtype=dtype, offset=_HEADER.size)
    if body.size != height * width * channels:
        raise ImageFileError(f"recorded frame holds {body.size} codes, its header says {height}x{width}x{channels}")
    return body.reshape(height, width, channels).astype(dtype.newbyteorder("="), copy=False), epoch


class Recorder:
    """Writes measurements (and, only if asked, plain debug frames) to an MCAP file."""

    def __init__(self, path: str | Path, spec: ReadoutSpec, fingerprint: str, *, chunk_size: int = 256 * 1024,
                 record_plain: bool = False, force: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix != ".mcap":
            raise ImageFileError(f"recording '{self.path}' should end in .mcap")
        if self.path.exists() and not force:
            raise ImageFileError(f"recording '{self.path}' already exists; choose another name or pass --force")
        if not self.path.parent.is_dir():
            raise ImageFileError(f"cannot record to '{self.path}': directory '{self.path.parent}' does not exist")
        self.spec, self.fingerprint = spec, fingerprint
        self.record_plain = record_plain
        if record_plain:
            log.warning("RECORDING PLAIN FRAMES to %s (debug flag): anyone with this file sees the scene", self.path)
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.NONE)
        self._writer.start(profile="keycam", library="keycam 0.1.0")
        self._channels: dict[str, int] = {}
        self.frames = 0
        self._writer.add_metadata("keycam", {"fingerprint": fingerprint, "spec": spec.model_dump_json()})

    def _channel(self, topic: str, image: np.ndarray, epoch: int) -> int:
        if topic not in self._channels:
            height, width, channels = image.shape
            self._channels[topic] = self._writer.register_channel(
                topic, ENCODING, 0,
                {"spec": self.spec.model_dump_json(), "fingerprint": self.fingerprint, "height": str(height),
                 "width": str(width), "channels": str(channels), "dtype": image.dtype.name,
                 "first_epoch": str(epoch)},
            )
        return self._channels[topic]

    def write(self, measurement: np.ndarray, epoch: int, sequence: int, timestamp_ns: int,
              plain: np.ndarray | None = None) -> None:
        if measurement.dtype != self.spec.output_dtype or measurement.ndim != 3:
            raise ImageFileError(f"measurement {measurement.shape} {measurement.dtype} does not match the spec "
                                 f"({self.spec.output_dtype}, (H, W, C))")
        channel = self._channel(MEASUREMENT_TOPIC, measurement, epoch)
        self._writer.add_message(channel, log_time=timestamp_ns, data=encode_frame(measurement, epoch,
                                 self.spec.output_bits), publish_time=timestamp_ns, sequence=sequence)
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
    fingerprint: str = ""
    spec: ReadoutSpec | None = None
    truncated: bool = False


def read_recording(path: str | Path, topic: str = MEASUREMENT_TOPIC,
                   info: RecordingInfo | None = None) -> Iterator[RecordedFrame]:
    """The frames of one topic, in recorded order; a truncated file yields its complete chunks and warns."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"recording '{path}' does not exist")
    info = info if info is not None else RecordingInfo()
    channels: dict[int, str] = {}
    with open(path, "rb") as handle:
        try:
            for record in StreamReader(handle, skip_magic=False, emit_chunks=False).records:
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                    if record.topic == topic and record.message_encoding != ENCODING:
                        raise ImageFileError(f"recording '{path}': channel {topic} is {record.message_encoding}, "
                                             f"not {ENCODING}")
                elif isinstance(record, Metadata) and record.name == "keycam":
                    info.fingerprint = record.metadata.get("fingerprint", "")
                    info.spec = ReadoutSpec.model_validate(json.loads(record.metadata["spec"]))
                elif isinstance(record, Message) and channels.get(record.channel_id) == topic:
                    image, epoch = decode_frame(record.data)
                    yield RecordedFrame(topic, image, epoch, record.sequence, record.log_time)
        except (McapError, EOFError, struct.error, ValueError) as error:
            info.truncated = True
            log.warning("recording '%s' ends early (%s): replaying up to its last complete chunk", path,
                        type(error).__name__)
