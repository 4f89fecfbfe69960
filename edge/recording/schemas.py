"""The channels of a keycam recording and their schemas: Foxglove's published ones, keycam's own.

Foxglove's schemas (``foxglove.RawImage``, ``foxglove.ImageAnnotations``) are protobuf, from Foxglove's own
``foxglove-schemas-protobuf`` package; each is stored in the recording as MCAP's ``protobuf`` schema encoding
requires: the serialized ``FileDescriptorSet`` of the message's file and every file it imports, dependencies
first. keycam's own channels are JSON with a JSON Schema (MCAP's ``jsonschema`` schema encoding), which any
MCAP tool, Foxglove included, shows as it is.

Protobuf for the images, because a measurement is a few hundred kilobytes of codes: protobuf carries them as
they are, where JSON would carry them as base64 (a third larger before compression, and about three times the
CPU time per frame, measured in docs/benchmarks.md). JSON for keycam's own metadata, answers and events:
small, and readable by anyone without a schema compiler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from google.protobuf.descriptor_pb2 import FileDescriptorSet

MEASUREMENT_TOPIC = "/keycam/measurement"  # foxglove.RawImage: the private measurement (noise)
PLAIN_TOPIC = "/keycam/plain"  # foxglove.RawImage: plain frames, only with the explicit debug flag
FRAME_TOPIC = "/keycam/frame"  # keycam.Frame: each measurement's provenance (epoch, key, spec, masks, size)
DETECTIONS_TOPIC = "/keycam/detections"  # foxglove.ImageAnnotations: the answer drawn over the measurement
ANSWERS_TOPIC = "/keycam/answers"  # keycam.Answer: the frame's answer, as the results file writes it
EVENTS_TOPIC = "/keycam/events"  # keycam.Events: the frame's tracking events and the zones' occupancy

PROFILE = "keycam"
FORMAT = "keycam.recording/2"  # version 1: one channel of keycam.frame/1 messages (edge.recording.legacy)


@dataclass(frozen=True)
class ChannelSchema:
    """What an MCAP schema record holds, and the message encoding of the channels that use it."""

    name: str
    encoding: str  # the schema's encoding: "protobuf" or "jsonschema"
    data: bytes
    message_encoding: str  # "protobuf" or "json"


def descriptor_set(message_class) -> bytes:
    """The serialized FileDescriptorSet of ``message_class``'s file and its imports, each once, dependencies
    first (what MCAP's protobuf schema encoding stores, and what Foxglove and ``mcap_protobuf`` read)."""
    files = FileDescriptorSet()
    seen: set[str] = set()

    def add(file) -> None:
        for dependency in file.dependencies:
            if dependency.name not in seen:
                seen.add(dependency.name)
                add(dependency)
        file.CopyToProto(files.file.add())

    seen.add(message_class.DESCRIPTOR.file.name)
    add(message_class.DESCRIPTOR.file)
    return files.SerializeToString()


def _protobuf(message_class) -> ChannelSchema:
    return ChannelSchema(message_class.DESCRIPTOR.full_name, "protobuf", descriptor_set(message_class), "protobuf")


def _json(schema: dict) -> ChannelSchema:
    return ChannelSchema(schema["title"], "jsonschema", json.dumps(schema, sort_keys=True).encode(), "json")


_COUNT = {"type": "integer", "minimum": 0}
_SIZE = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}

FRAME_SCHEMA = {
    "title": "keycam.Frame",
    "description": "The provenance of the measurement logged at the same time with the same sequence: what a "
                   "replay needs to read it (its key epoch and key), and what it was read out under.",
    "type": "object",
    "properties": {
        "sequence": {**_COUNT, "description": "the frame's number in its run (MCAP's own sequence is 32-bit)"},
        "timestamp_ns": {**_COUNT, "description": "capture time, UTC nanoseconds (a replay: the recorded time)"},
        "monotonic_ns": {**_COUNT, "description": "the device's monotonic clock at capture (0: unknown)"},
        "epoch": {**_COUNT, "description": "the key epoch the measurement was read out in"},
        "fingerprint": {"type": "string", "description": "the key's fingerprint, kc1:..."},
        "masks": {"type": "string", "description": "the privacy masks' digest ('': none)"},
        "source_size": {"oneOf": [{"type": "null"}, _SIZE],
                        "description": "[width, height] of the camera frame the measurement was fitted from"},
        "bits": {"enum": [8, 10, 12, 16], "description": "bits of each code"},
        "channels": {"enum": [1, 3, 4], "description": "codes per position (4: a Bayer cell R, Gr, Gb, B)"},
        "spec": {"type": "object", "description": "the readout spec (docs/readout-spec.md)"},
        "seal": {"type": "string", "description": "a sealed measurement's seal: header hex:tag hex"},
    },
    "required": ["sequence", "timestamp_ns", "epoch", "fingerprint", "source_size", "bits", "channels", "spec"],
}

ANSWER_SCHEMA = {
    "title": "keycam.Answer",
    "description": "A frame's answer, as the results file writes it (docs/tasks.md); boxes in camera pixels.",
    "type": "object",
    "properties": {
        "sequence": _COUNT, "timestamp_ns": _COUNT, "origin": {"type": "string"},
        "fingerprint": {"type": "string"}, "epoch": _COUNT, "masks": {"type": "string"},
        "outputs": {"type": "object"}, "error": {"type": "string"},
    },
    "required": ["sequence", "timestamp_ns", "outputs"],
}

EVENTS_SCHEMA = {
    "title": "keycam.Events",
    "description": "The tracking events a frame produced (docs/events.md), and the zones' occupancy after it.",
    "type": "object",
    "properties": {
        "sequence": _COUNT, "timestamp_ns": _COUNT,
        "events": {"type": "array", "items": {"type": "object", "properties": {
            "type": {"enum": ["new", "update", "end"]}}, "required": ["type"]}},
        "zones": {"oneOf": [{"type": "null"}, {"type": "object"}]},
    },
    "required": ["sequence", "timestamp_ns", "events"],
}

RAW_IMAGE = _protobuf(RawImage)
IMAGE_ANNOTATIONS = _protobuf(ImageAnnotations)
FRAME = _json(FRAME_SCHEMA)
ANSWER = _json(ANSWER_SCHEMA)
EVENTS = _json(EVENTS_SCHEMA)

SCHEMAS = {MEASUREMENT_TOPIC: RAW_IMAGE, PLAIN_TOPIC: RAW_IMAGE, FRAME_TOPIC: FRAME,
           DETECTIONS_TOPIC: IMAGE_ANNOTATIONS, ANSWERS_TOPIC: ANSWER, EVENTS_TOPIC: EVENTS}
IMAGE_TOPICS = (MEASUREMENT_TOPIC, PLAIN_TOPIC)
