"""Frame sources: a small base (``base``), one file per kind, and the registry of kinds.

Each kind's module defines its source and its configuration model (a ``SourceConfig`` with a literal
``kind``). The list below registers them; ``SourceSettings`` is the discriminated union that the
configuration schema selects by ``kind``. Adding a kind is one file and one line here.

A path named on the command line goes to the kind that claims it most surely (``SourceConfig.claim``:
a recording by its suffix, a folder or an image by what it is, a video as the fallback for any other
file); the order of the list never decides, and two equal strongest claims are refused.

``virtual`` is not a kind: it wraps every plain source with the run's readout stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

from pydantic import Field, ValidationError

from edge.errors import ConfigError
from edge.sources import default, fashion, folder, opencv, picamera, recording, video
from edge.sources.base import CLAIM_NONE, Source, SourceConfig
from firmware_sim.registry import Registry

KINDS: Registry[type[SourceConfig]] = Registry("source")
for _config in (recording.RecordingConfig, folder.FolderConfig, video.VideoConfig, opencv.OpenCVConfig,
                picamera.PicameraConfig, default.DefaultConfig, fashion.FashionMnistConfig):
    KINDS.add(_config.model_fields["kind"].default, _config)


def settings_union():
    """The configuration schema's ``source``: one of the registered kinds, chosen by ``kind``."""
    return Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]


SourceSettings = settings_union()


def config_for_path(path: Path) -> SourceConfig:
    """The source settings for a path given on the command line: the kind that claims it most surely."""
    claims = {name: kind.claim(path) for name, kind in KINDS.items()}
    best = max(claims.values(), default=CLAIM_NONE)
    if best == CLAIM_NONE:
        if not path.exists():
            raise ConfigError(f"source '{path}' does not exist")
        raise ConfigError(f"source '{path}' is neither a recording (.mcap), an image folder or file, nor a video file")
    winners = [name for name, claim in claims.items() if claim == best]
    if len(winners) > 1:
        raise ConfigError(f"source '{path}' is claimed by the source kinds {' and '.join(winners)} alike; name the "
                          f"kind in a configuration file ([source] kind = ...)")
    try:
        return KINDS[winners[0]].for_path(path)
    except ValidationError as error:
        raise ConfigError(f"source '{path}' cannot be read as a {winners[0]}: {error.errors()[0]['msg']}") from None


__all__ = ["KINDS", "Source", "SourceConfig", "SourceSettings", "config_for_path", "settings_union"]
