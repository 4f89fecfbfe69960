"""The configuration file of ``keycam run`` (TOML), with a strict schema.

Unknown keys are errors; every field has a description, a unit and bounds; an error names the file,
the key path, the value and the fix. ``keycam validate-config FILE`` checks a file without running,
with the same checks ``keycam run`` makes before it opens anything::

    [source]                   # one kind's settings, chosen by `kind` (edge.sources)
    kind = "picamera"          # default | folder | video | recording | opencv | picamera
    frame_rate = 15.0          # ... and that kind's own fields
    [model]
    path = "keyed.onnx"        # a full or feature keyed model (empty: the default model)
    task = ""                  # the task model of a split (optional)
    key = "camera.key"
    [readout]
    epoch = -1                 # key epoch of the first frame (-1: the model's own)
    rotate_frames = 0          # or rotate_seconds: key epochs
    [task]                     # what the outputs are (edge.tasks): auto | classify | detect | segment | tensors
    kind = "auto"
    score_threshold = 0.5      # detect: ... and iou_threshold, max_detections, labels, classes, [task.anchors]
    [loop]
    queue = 4
    max_frames = 0
    on_frame_error = "skip"    # or "stop": a frame that fails in any stage
    [metrics]
    port = 0                   # Prometheus /metrics on this port (0: off)
    [results]                  # the sinks' sections (edge.sinks): results, record, forward
    path = "-"
    [record]
    path = ""                  # an .mcap recording of the measurements (optional)
    [forward]
    url = ""                   # an Open Inference Protocol server: measurements (or a split's features) go there
    [events]
    enabled = false            # track objects across frames: events and zones (edge.events; the events extra)
    path = ""                  # the events log, JSON lines (optional)
    [zones.driveway]           # a zone, named: a polygon in camera pixels, and its filters (edge.events.zones)
    coordinates = [[0, 300], [640, 300], [640, 480], [0, 480]]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, Field, ValidationError, model_validator

from edge.errors import ConfigError
from edge.events.zones import ZoneConfig, check_zones
from edge.masks import PrivacyMasks
from edge.schema import Section
from edge.sinks import SECTIONS, SinkConfig
from edge.sinks.events import EventsConfig
from edge.sinks.forwarding import ForwardConfig
from edge.sinks.metrics import MetricsConfig
from edge.sinks.mqtt import MqttConfig
from edge.sinks.recorder import RecordConfig
from edge.sinks.results import ResultsConfig
from edge.sinks.web import WebConfig
from edge.sources import KINDS, SourceSettings
from edge.sources.default import DefaultConfig
from edge.tasks import TaskConfig
from firmware_sim.manifest import FITS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MOVED = {  # keys of earlier versions, and where they went
    "output": "[output] is now [results] (path = ...) and [record] (path = ..., plain_debug = ...)",
    "source.target": "source.target is now the kind's own field: path (folder, video, recording), camera or url "
                     "(opencv)",
    "source.virtual": "source.virtual is gone: every plain source is read out by the virtual sensor as it is taken",
    "source.reference_readout": "source.reference_readout is now readout.reference",
}


FRAMINGS = ("model", *FITS)
MOST_FRAMES = 10**12  # a frame count's bound: 2,000 years at 15 fps  # [model] fit: the model's own framing, or one of edge.fitting's rules


class ModelConfig(Section):
    path: str = Field(default="", description="keyed model (full or feature), .onnx; empty for the default model")
    task: str = Field(default="", description="task model of a split, .onnx (optional)")
    key: str = Field(default="", description="key file (mode 0600); empty for the default job's key")
    threads: int = Field(default=0, ge=0, le=64, strict=True, description="onnxruntime intra-op threads (0: its default)")
    optimisation: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="onnxruntime graph optimisation level")
    fit: Literal[FRAMINGS] = Field(default="model", description="how camera frames are brought to the model's "
                                                                "size: the model's own rule (recorded when it was "
                                                                "keyed), or crop, letterbox, stretch")
    folder: str = Field(default="", description="the embedded default's folder for its key and compiled models "
                                                "(empty: $KEYCAM_DATA, else $XDG_DATA_HOME/keycam; unit: path)")

    @property
    def fit_override(self) -> str | None:
        """The framing the configuration asks for, None for the model's own."""
        return None if self.fit == "model" else self.fit

    @model_validator(mode="after")
    def _key_for_a_model(self) -> ModelConfig:
        if self.path and not self.key:
            raise ValueError("model.path is set but model.key is not; name the key file the model was keyed for")
        return self


def _polygon(points: list) -> list:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points [x, y], got {len(points)}")
    area = 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1])))
    if area == 0:
        raise ValueError(f"the polygon {points} encloses no area; give its corners in camera pixels")
    return points


Point = Annotated[tuple[Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)],
                        Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]], Field()]
Polygon = Annotated[list[Point], AfterValidator(_polygon)]
"""A polygon in camera pixels: at least three [x, y] points, finite, enclosing some area."""


class ReadoutConfig(Section):
    epoch: int = Field(default=-1, ge=-1, lt=1 << 64, strict=True, description="key epoch of the first frame (-1: the model's own)")
    rotate_frames: int = Field(default=0, ge=0, le=MOST_FRAMES, strict=True,
                               description="advance the key epoch every N frames (0: never; unit: frames)")
    rotate_seconds: float = Field(default=0.0, ge=0, le=31_536_000, strict=True, allow_inf_nan=False, description="advance the key epoch every T "
                                                                                 "seconds of sensor time (0: never)")
    reference: bool = Field(default=False, strict=True, description="read out with firmware_sim's reference model (exact, "
                                                       "slow) instead of the edge transform, its byte-exact twin")
    masks: list[Polygon] = Field(default_factory=list, max_length=256,
                                 description="privacy masks: polygons [[x, y], ...] in camera pixels, never "
                                             "digitised, for anyone (edge.masks; no new model needed)")
    mask_image: str = Field(default="", description="a privacy mask as a picture laid over the camera frame: its "
                                                    "nonzero pixels are masked (unit: path)")

    @model_validator(mode="after")
    def _one_rotation(self) -> ReadoutConfig:
        if self.rotate_frames and self.rotate_seconds:
            raise ValueError("readout.rotate_frames and readout.rotate_seconds are both set; choose one")
        if self.mask_image and not Path(self.mask_image).is_file():
            raise ValueError(f"readout.mask_image = {self.mask_image!r} does not exist; give a picture whose "
                             f"nonzero pixels are masked")
        return self

    def privacy_masks(self) -> PrivacyMasks | None:
        return PrivacyMasks.from_settings(self.masks, self.mask_image)

    @property
    def rotating(self) -> bool:
        return bool(self.rotate_frames or self.rotate_seconds)


class LoopConfig(Section):
    queue: int = Field(default=4, ge=1, le=256, strict=True, description="frames between capture and inference "
                                                                         "(unit: frames)")
    max_frames: int = Field(default=0, ge=0, le=MOST_FRAMES, strict=True,
                            description="stop after this many frames (0: run to the end)")
    realtime: bool = Field(default=False, strict=True, description="replay recorded sources at their recorded speed")
    on_frame_error: Literal["skip", "stop"] = Field(
        default="skip", description="a frame that fails in any stage (readout, model, answer) is counted, logged "
                                    "in one line and skipped; or the run stops with its error")
    open_retries: int = Field(default=3, ge=0, le=1000, strict=True, description="a live source (camera) that cannot be opened "
                                                                "at start is tried again this many times, with "
                                                                "backoff (0: fail at once)")
    open_backoff_s: float = Field(default=2.0, ge=0, le=600, strict=True, allow_inf_nan=False, description="the wait before the first retry of the "
                                                                         "first open, doubled each time up to 60 s "
                                                                         "(unit: seconds)")


class Config(Section):
    """``keycam run``'s configuration: one section per concern, each strict, every field described and bounded.

    The sinks' sections (``results``, ``mqtt``, ``record``, ``forward``) are the kinds registered in
    ``edge.sinks``; ``tests/edge/test_registry.py`` checks that this class declares exactly those."""

    source: SourceSettings = Field(default_factory=DefaultConfig, description="where frames come from")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the keyed model and its key")
    readout: ReadoutConfig = Field(default_factory=ReadoutConfig, description="the sensor's readout: key epochs")
    task: TaskConfig = Field(default_factory=TaskConfig, description="what the model's outputs are (edge.tasks)")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="the capture loop")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="the Prometheus endpoint")
    results: ResultsConfig = Field(default_factory=ResultsConfig, description="answers as JSON lines")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="answers to an MQTT broker")
    record: RecordConfig = Field(default_factory=RecordConfig, description="measurements to an MCAP recording")
    forward: ForwardConfig = Field(default_factory=ForwardConfig, description="measurements to an inference "
                                                                              "server")
    web: WebConfig = Field(default_factory=WebConfig, description="the page the device serves: the measurement "
                                                                  "live with its answers, events, health (edge.web)")
    events: EventsConfig = Field(default_factory=EventsConfig, description="tracked objects, their events and "
                                                                           "the events log (edge.events)")
    zones: dict[str, ZoneConfig] = Field(default_factory=dict, description="[zones.NAME]: polygons in camera pixels "
                                                                           "that tracked objects enter and leave")

    @model_validator(mode="after")
    def _zones_need_tracking(self) -> Config:
        check_zones(self.zones)
        if self.zones and not self.events.enabled:
            raise ValueError(f"[zones.{next(iter(self.zones))}] is set but events.enabled is false; zones follow "
                             f"tracked objects: set [events] enabled = true")
        return self

    def sink_sections(self) -> list[SinkConfig]:
        """The sinks' sections, in the registry's order (``edge.sinks.SECTIONS``)."""
        return [getattr(self, name) for name in SECTIONS]


def _allowed(model, location: tuple) -> str:
    """The keys allowed where an unknown key was found."""
    for part in location[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            break
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            model = annotation
        elif get_origin(annotation) is dict:  # named sections ([zones.NAME]): the name comes next
            model = get_args(annotation)[1]
            break
        else:  # the source union: pydantic puts the chosen kind next in the location
            kind = location[location.index(part) + 1] if location.index(part) + 1 < len(location) else None
            model = KINDS[kind] if kind in KINDS else None
            break
    return ", ".join(model.model_fields) if model is not None else "see docs/runtime.md"


def problems(error: ValidationError, root=None) -> str:
    """A pydantic validation error as one line: each key path, its value and what is wrong."""
    root = root or Config
    found = []
    for item in error.errors():
        location = tuple(item["loc"])
        shown = [str(p) for p in location if not (p in KINDS and len(location) > 1 and location[0] == "source")]
        where = ".".join(shown)
        if item["type"] == "extra_forbidden":
            hint = MOVED.get(where) or MOVED.get(shown[0] if shown else "")
            found.append(hint or f"unknown key '{where}' (allowed here: {_allowed(root, location)})")
        elif item["type"] == "union_tag_not_found":
            found.append(f"{where}.kind is missing; use one of {', '.join(KINDS)}")
        elif item["type"] == "union_tag_invalid":
            found.append(f"{where}.kind = {item['input'].get('kind')!r} is not a source kind; use one of "
                         f"{', '.join(KINDS)}" if isinstance(item.get("input"), dict) else f"{where}: {item['msg']}")
        elif item["type"] == "missing":
            found.append(f"{where} is missing (required here)")
        elif item["type"] == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
            named = not where or message.startswith(shown[0]) or f"{shown[-1]} " in message
            found.append(message if named else f"{where}: {message}")  # the key path, where the check did not say
        else:
            found.append(f"{where} = {item.get('input')!r}: {item['msg']}")
    return "; ".join(found)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file '{path}' does not exist or is not a file")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"configuration file '{path}' is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"configuration file '{path}' cannot be read: {error.strerror}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"configuration file '{path}': {problems(error)}") from None


def default_config() -> Config:
    return Config()


def validated(config: Config) -> Config:
    """``config`` checked again as a whole (settings assigned in code meet the file's checks)."""
    try:
        return Config.model_validate(config.model_dump())
    except ValidationError as error:
        raise ConfigError(f"configuration: {problems(error)}") from None


def override(config: Config, **changes: Any) -> Config:
    """The configuration with settings laid over it (``"loop.max_frames": 10``, ``"source": {...}``), validated.

    Command-line options go through here, so they meet the same checks as the file.
    """
    data = config.model_dump()
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[last] = value.model_dump() if isinstance(value, Section) else value
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(problems(error)) from None
