"""The configuration file of ``keycam run`` (TOML), with a strict schema.

Unknown keys are errors; every field has a description, a unit and bounds; an error names the file,
the key path, the value and the fix. ``keycam validate-config FILE`` checks a file without running.

    [source]
    kind = "picamera"          # picamera | opencv | folder | recording | default
    target = ""                # opencv: camera index, video file or URL; folder/recording: a path
    virtual = false            # read plain frames out with the virtual sensor (no keycam hardware)
    frame_rate = 30.0          # picamera: frames per second
    [model]
    path = "keyed.onnx"        # a full or feature keyed model
    task = ""                  # the task model of a split (optional)
    key = "camera.key"
    threads = 2
    optimisation = "all"
    [output]
    results = "-"              # JSON lines: "-" for standard output, or a file
    record = ""                # an .mcap recording of the measurements (optional)
    record_plain = false       # DEBUG ONLY: also record plain frames (loud warning)
    [loop]
    queue = 4
    max_frames = 0
    realtime = false
    [metrics]
    port = 0                   # Prometheus /metrics on this port (0: off)
    host = "127.0.0.1"
    [forward]
    url = ""                   # an Open Inference Protocol server: measurements (or a split's features) go there
    model = "keyed"            # the model's name on the server
    spool = "keycam-spool"     # frames wait here while the server is down
    when_full = "drop_oldest"  # or "stop_capture"
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import KeycamError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(KeycamError):
    """A configuration file is invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Section):
    kind: Literal["picamera", "opencv", "folder", "recording", "default"] = Field(
        default="default", description="where frames come from; 'default' replays the package-shipped frames")
    target: str = Field(default="", description="opencv: camera index, video file or stream URL; folder or "
                                                 "recording: a path (unit: path)")
    virtual: bool = Field(default=False, description="read plain frames out with the virtual sensor (the "
                                                      "firmware_sim twin) instead of in the loop")
    reference_readout: bool = Field(default=False, description="virtual sensor: use firmware_sim's reference "
                                                                "readout (exact, slow) instead of its fast twin")
    frame_rate: float | None = Field(default=None, gt=0, le=240, description="picamera: frames per second")
    exposure_us: int | None = Field(default=None, gt=0, le=10_000_000, description="picamera: exposure, microseconds")
    camera_num: int = Field(default=0, ge=0, le=16, description="picamera: camera number")


class ModelConfig(_Section):
    path: str = Field(default="", description="keyed model (full or feature), .onnx; empty for the default model")
    task: str = Field(default="", description="task model of a split, .onnx (optional)")
    key: str = Field(default="", description="key file (mode 0600); empty for the default job's key")
    threads: int = Field(default=0, ge=0, le=64, description="onnxruntime intra-op threads (0: its default)")
    optimisation: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="onnxruntime graph optimisation level")


class OutputConfig(_Section):
    results: str = Field(default="-", description="JSON-lines results: '-' for standard output, or a file path")
    record: str = Field(default="", description="record the measurements to this .mcap file (optional)")
    record_plain: bool = Field(default=False, description="DEBUG ONLY: also record plain frames (loud warning)")


class ReadoutConfig(_Section):
    epoch: int = Field(default=-1, ge=-1, description="key epoch of the first frame (-1: the model's own)")
    rotate_frames: int = Field(default=0, ge=0, description="advance the key epoch every N frames (0: never; "
                                                             "unit: frames)")
    rotate_seconds: float = Field(default=0.0, ge=0, le=31_536_000, description="advance the key epoch every T "
                                                                                 "seconds of sensor time (0: never)")


class MetricsConfig(_Section):
    port: int = Field(default=0, ge=0, le=65535, description="serve Prometheus metrics on this TCP port "
                                                              "(0: no metrics endpoint)")
    host: str = Field(default="127.0.0.1", description="address to bind the metrics endpoint to")


class LoopConfig(_Section):
    queue: int = Field(default=4, ge=1, le=256, description="frames between capture and inference (unit: frames)")
    max_frames: int = Field(default=0, ge=0, description="stop after this many frames (0: run to the end)")
    realtime: bool = Field(default=False, description="replay recorded sources at their recorded speed")


class ForwardConfig(_Section):
    url: str = Field(default="", description="forward to this Open Inference Protocol server, e.g. "
                                             "'http://server:8000' (empty: run the model on the device)")
    model: str = Field(default="", description="the model's name in the server's repository")
    version: str = Field(default="", description="the model's version on the server (empty: its latest)")
    token_file: str = Field(default="", description="bearer token for the server, in a file of mode 0600 (optional)")
    timeout_s: float = Field(default=10.0, gt=0, le=600, description="one request's timeout, seconds")
    connect_s: float = Field(default=30.0, ge=0, le=3600, description="how long the first start waits for the "
                                                                      "server, seconds")
    spool: str = Field(default="keycam-spool", description="folder for frames waiting for the server (unit: path)")
    spool_max_frames: int = Field(default=10_000, ge=1, description="spool bound, frames")
    spool_max_mb: float = Field(default=512.0, gt=0, description="spool bound, MiB")
    when_full: Literal["drop_oldest", "stop_capture"] = Field(
        default="drop_oldest", description="a full spool drops its oldest frame, or stops capture until there is "
                                           "room")
    inflight: int = Field(default=8, ge=1, le=1024, description="requests queued in memory while the server "
                                                                "answers (unit: frames)")
    retry_min_s: float = Field(default=0.2, gt=0, le=60, description="first retry delay, seconds (doubles)")
    retry_max_s: float = Field(default=10.0, gt=0, le=3600, description="longest retry delay, seconds")
    drain_s: float = Field(default=30.0, ge=0, le=3600, description="at the end, how long to wait for the server "
                                                                    "to take what is queued, seconds")
    device_id: str = Field(default="", description="this device's name in request ids (default: host name)")


class Config(_Section):
    source: SourceConfig = Field(default_factory=SourceConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    readout: ReadoutConfig = Field(default_factory=ReadoutConfig)
    forward: ForwardConfig = Field(default_factory=ForwardConfig)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file '{path}' does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"configuration file '{path}' is not valid TOML: {error}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"])
            if item["type"] == "extra_forbidden":
                section = item["loc"][0] if len(item["loc"]) > 1 else None
                model = Config.model_fields[section].annotation if section in Config.model_fields else Config
                allowed = ", ".join(model.model_fields)
                problems.append(f"unknown key '{where}' (allowed here: {allowed})")
            else:
                problems.append(f"{where} = {item.get('input')!r}: {item['msg']}")
        raise ConfigError(f"configuration file '{path}': " + "; ".join(problems)) from None
