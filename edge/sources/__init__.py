"""Frame sources: a small base (``base``), one file per kind, and the registry of kinds.

Each kind's module defines its source and its configuration model (a ``SourceConfig`` with a literal
``kind``). The list below registers them, in the order in which they claim a path named on the
command line (:func:`config_for_path`); ``SourceSettings`` is the discriminated union that the
configuration schema selects by ``kind``. Adding a kind is one file and one line here.

``virtual`` is not a kind: it wraps every plain source with the run's readout stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

from pydantic import Field

from edge.errors import ConfigError
from edge.registry import Registry
from edge.sources import default, fashion, folder, opencv, picamera, recording, video
from edge.sources.base import Source, SourceConfig

KINDS: Registry[type[SourceConfig]] = Registry("source")
for _config in (recording.RecordingConfig, folder.FolderConfig, video.VideoConfig, opencv.OpenCVConfig,
                picamera.PicameraConfig, default.DefaultConfig, fashion.FashionMnistConfig):
    KINDS.add(_config.model_fields["kind"].default, _config)

SourceSettings = Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]


def config_for_path(path: Path) -> SourceConfig:
    """The source settings for a path given on the command line: the first kind that reads it."""
    for kind in KINDS.values():
        try:
            found = kind.for_path(path)
        except ValueError as error:  # pydantic's ValidationError
            raise ConfigError(f"source '{path}' cannot be read as a {kind.model_fields['kind'].default}: "
                              f"{error.errors()[0]['msg'] if hasattr(error, 'errors') else error}") from None
        if found is not None:
            return found
    if not path.exists():
        raise ConfigError(f"source '{path}' does not exist")
    raise ConfigError(f"source '{path}' is neither a recording (.mcap), an image folder or file, nor a video file")


__all__ = ["KINDS", "Source", "SourceConfig", "SourceSettings", "config_for_path"]
