"""What the recording tests share: measured frames and results, the official reader with decoders for every
channel, Foxglove's JSON form of a protobuf message, and a writer of the first format (``keycam.frame/1``)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from mcap.decoder import DecoderFactory
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer
from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoders

from edge.frame import Frame, Result
from edge.recording import encode_frame
from edge.transform import AdcTransform
from firmware_sim.spec import DEFAULT_SPEC

FOXGLOVE = Path(__file__).with_name("foxglove")  # Foxglove's published JSON schemas (foxglove-sdk, MIT)
# Foxglove's RawImage encodings (its schema's documentation), and the bytes of one pixel in each
ENCODINGS = {"8UC1": 1, "8UC3": 3, "16UC1": 2, "32FC1": 4, "bayer_bggr8": 1, "bayer_gbrg8": 1, "bayer_grbg8": 1,
             "bayer_rggb8": 1, "bgr8": 3, "bgra8": 4, "mono8": 1, "mono16": 2, "rgb8": 3, "rgba8": 4}


def plain_frames(count: int, spec=DEFAULT_SPEC, size=(24, 32), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (2 * size[0], 2 * size[1]) if spec.is_bayer else (*size, spec.channels)
    return [rng.integers(0, spec.input_max + 1, shape).astype(spec.input_dtype) for _ in range(count)]


def measured(key, count: int, spec=DEFAULT_SPEC, size=(24, 32), outputs=None, start_ns: int = 0,
             step_ns: int = 1_000_000) -> list[Result]:
    """``count`` results of measured frames (epoch i // 4), each with ``outputs`` (a dict, or a function of i)."""
    transform = AdcTransform(key, spec)
    results = []
    for i, plain in enumerate(plain_frames(count, spec, size)):
        frame = Frame(transform(plain, epoch=i // 4), i, start_ns + i * step_ns, "test", measured=True, epoch=i // 4,
                      fingerprint=key.fingerprint, source_size=(size[1] * 2, size[0] * 2), monotonic_ns=1000 + i)
        answer = outputs(i) if callable(outputs) else (outputs or {})
        results.append(Result(frame, outputs=answer))
    return results


class JsonDecoders(DecoderFactory):
    def decoder_for(self, message_encoding, schema):
        return json.loads if message_encoding == "json" else None


def decoded(path: Path) -> list[tuple]:
    """(schema, channel, message, decoded) of every message, by the official reader and the official protobuf
    decoder (which builds the classes from the file's own schema records)."""
    with open(path, "rb") as handle:
        reader = make_reader(handle, decoder_factories=[ProtobufDecoders(), JsonDecoders()])
        return list(reader.iter_decoded_messages())


def foxglove_json(message) -> dict:
    """A protobuf message as Foxglove's JSON schemas have it: times {sec, nsec}, bytes in base64, enums as
    numbers, every field (proto3 reads a missing one as its default)."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        repeated = field.is_repeated if hasattr(type(field), "is_repeated") else field.label == field.LABEL_REPEATED
        out[field.name] = [_value(field, v) for v in value] if repeated else _value(field, value)
    return out


def _value(field, value):
    if field.message_type is not None:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return {"sec": value.seconds, "nsec": value.nanos}
        return foxglove_json(value)
    if field.type == field.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def foxglove_schema(name: str) -> dict:
    return json.loads((FOXGLOVE / f"{name}.json").read_text())


def write_first_format(path: Path, measurements: list[np.ndarray], fingerprint: str, spec=DEFAULT_SPEC,
                       source_size: tuple[int, int] | None = (64, 48), masks: str = "") -> Path:
    """A recording as keycam wrote it before Foxglove's schemas: one keycam.frame/1 channel, KCF2 headers (KCF1
    without ``source_size``), uncompressed chunks."""
    with open(path, "wb") as handle:
        writer = Writer(handle, chunk_size=4096, compression=CompressionType.NONE, enable_data_crcs=True)
        writer.start(profile="keycam", library="keycam 0.1.0")
        first = measurements[0]
        metadata = {"spec": spec.model_dump_json(), "fingerprint": fingerprint, "height": str(first.shape[0]),
                    "width": str(first.shape[1]), "channels": str(first.shape[2]), "dtype": first.dtype.name,
                    "first_epoch": "0"}
        if masks:
            metadata["masks"] = masks
        channel = writer.register_channel("/keycam/measurement", "keycam.frame/1", 0, metadata)
        writer.add_metadata("keycam", {"fingerprint": fingerprint, "spec": spec.model_dump_json()})
        for i, image in enumerate(measurements):
            writer.add_message(channel, log_time=1_000_000 * i, publish_time=1_000_000 * i, sequence=i,
                               data=encode_frame(image, i // 4, spec.output_bits, source_size))
        writer.finish()
    return path
