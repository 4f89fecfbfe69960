"""Recordings of private measurements in MCAP: compressed, segmented, retained, viewable in Foxglove.

A recording (``*.mcap``, profile ``keycam``, metadata record ``keycam``: fingerprint, spec, format) holds, per
frame, messages that share the frame's log time (its ``timestamp_ns``: UTC nanoseconds for live sources, the
recorded time in replays) and its sequence (MCAP's, 32-bit):

=========================  ==============================  ==========  ================================================
topic                      schema                          encoding    what
=========================  ==============================  ==========  ================================================
``/keycam/frame``          ``keycam.Frame`` (JSON Schema)  json        sequence, epoch, fingerprint, spec, masks, source
                                                                       size, bits, channels, times (and a seal)
``/keycam/measurement``    ``foxglove.RawImage``           protobuf    the measurement's codes, losslessly (noise)
``/keycam/plain``          ``foxglove.RawImage``           protobuf    plain frames: only with the explicit debug flag
``/keycam/answers``        ``keycam.Answer`` (JSON Schema)  json        the answer, as the results file writes it
``/keycam/detections``     ``foxglove.ImageAnnotations``   protobuf    the answer drawn over the measurement: boxes,
                                                                       labels, keypoints, rotated boxes, outlines
``/keycam/events``         ``keycam.Events`` (JSON Schema)  json        tracking events and the zones' occupancy
=========================  ==============================  ==========  ================================================

keycam's provenance travels on a companion channel rather than as extra fields of the image because the image
is protobuf (``edge.recording.schemas`` says why), whose RawImage has no room for it; the two messages of a
frame are joined by sequence, and an image whose provenance was lost is counted as damaged, never guessed.
The image channel's metadata repeats what does not change (spec, fingerprint, size, channels, bits, layout,
the first epoch, the masks' digest). Chunks are zstd-compressed, each with its CRC, and small (256 KiB), so
a killed process loses at most the chunk in flight.

A recording is one file (``keycam record OUT.mcap``) or a folder of segments with retention
(``edge.recording.segments``). Recordings of the first format (``keycam.frame/1``, KCF1 and KCF2 headers,
``edge.recording.legacy``) replay too. Measurements only, by default: no plain frame is ever written unless
asked, loudly, and then into a file of mode 0600.
"""

from __future__ import annotations

import numpy as np

from edge.recording.images import decode_image
from edge.recording.legacy import ENCODING, decode_recorded, encode_frame
from edge.recording.reader import (MCAP_MAGIC, RecordedFrame, RecordingInfo, check_recording, frame_count,
                                    read_recording)
from edge.recording.schemas import (ANSWERS_TOPIC, DETECTIONS_TOPIC, EVENTS_TOPIC, FRAME_TOPIC, MEASUREMENT_TOPIC,
                                    PLAIN_TOPIC)
from edge.recording.segments import Retention, Segment, SegmentedRecorder, check_folder, list_segments
from edge.recording.writer import Recorder

__all__ = [
    "ANSWERS_TOPIC", "DETECTIONS_TOPIC", "ENCODING", "EVENTS_TOPIC", "FRAME_TOPIC", "MCAP_MAGIC",
    "MEASUREMENT_TOPIC", "PLAIN_TOPIC", "RecordedFrame", "Recorder", "RecordingInfo", "Retention", "Segment",
    "SegmentedRecorder", "check_folder", "check_recording", "decode_frame", "decode_recorded", "encode_frame",
    "frame_count", "list_segments", "read_recording",
]

_CHANNELS = {"rgb8": 3, "bgr8": 3, "bayer_rggb8": 4}


def decode_frame(data: bytes, channels: int | None = None) -> tuple[np.ndarray, int | None]:
    """(codes (H, W, C), key epoch) of one measurement message of either format. A RawImage does not hold the
    epoch (its ``/keycam/frame`` does: None here) nor, for 16-bit colour or Bayer codes, the channels (give them:
    the channel's metadata has them)."""
    if data[:3] == b"KCF":
        image, epoch, _ = decode_recorded(data)
        return image, epoch
    if channels is None:
        from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

        channels = _CHANNELS.get(RawImage.FromString(data).encoding, 1)
    return decode_image(data, channels), None
