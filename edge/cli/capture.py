"""The capture commands: ``run``, ``record``, ``replay``, ``preview`` and ``validate-config``.

Each one is the same three steps: a configuration (the file, or the embedded default) with the
command's options laid over it and validated (``edge.config.override``), a job built from it
(``edge.job.build_job``), and the job run, with its summary on standard error.
"""

from __future__ import annotations

import argparse
import os
import sys

from edge.cli.args import count, path, positive
from edge.errors import ImageFileError


def register(commands) -> None:
    run = commands.add_parser("run", help="run the capture loop (no configuration: the embedded default job)")
    run.add_argument("--config", type=path, default=None, metavar="FILE", help="configuration file (TOML)")
    run.add_argument("--max-frames", type=count, default=None, help="stop after N frames (0: run to the end)")
    run.set_defaults(handler=run_command)

    replay = commands.add_parser("replay", help="replay a recording, a video or an image folder, deterministically")
    replay.add_argument("source", type=path, metavar="SOURCE", help="a .mcap recording, a video file or a folder")
    _model_options(replay)
    replay.add_argument("--output", default="-", metavar="RESULTS.jsonl", help="results (default: standard output)")
    replay.add_argument("--record", type=path, default=None, metavar="OUT.mcap|FOLDER",
                        help="also record the measurements (a folder: a new segment in it)")
    replay.add_argument("--force", action="store_true", help="replace an existing --record file")
    replay.add_argument("--realtime", action="store_true", help="at recorded speed instead of as fast as possible")
    replay.add_argument("--skip-damage", action="store_true",
                        help="exit 0 although damaged frames of the recording were skipped (they are counted)")
    replay.set_defaults(handler=replay_command)

    record = commands.add_parser("record", help="run the capture loop and record the measurements (MCAP)")
    record.add_argument("output", type=path, metavar="OUT.mcap|FOLDER",
                        help="one recording file, or a folder of segments (a new segment on every start)")
    record.add_argument("--config", type=path, default=None, metavar="FILE")
    record.add_argument("--max-frames", type=count, default=None, help="stop after N frames (0: run to the end)")
    record.add_argument("--plain-debug", action="store_true",
                        help="DEBUG ONLY: also record the plain frames (anyone with the file sees the scene)")
    record.add_argument("--force", action="store_true", help="replace an existing recording file")
    record.set_defaults(handler=record_command)

    preview = commands.add_parser("preview", help="key holders: PNG of plain | measurement | unscrambled | answer")
    preview.add_argument("source", type=path, nargs="?", default=None, metavar="SOURCE",
                         help="a recording, video or folder (default: the configured or default source)")
    preview.add_argument("-o", "--output", type=path, required=True, metavar="PREVIEW.png")
    _model_options(preview)
    preview.add_argument("--frames", type=positive, default=4, help="rows in the strip (default 4)")
    preview.set_defaults(handler=preview_command)

    validate = commands.add_parser("validate-config", help="check a configuration file")
    validate.add_argument("config", type=path, metavar="FILE")
    validate.set_defaults(handler=validate_command)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=path, default=None, metavar="FILE")
    parser.add_argument("--model", type=path, default=None, metavar="KEYED.onnx")
    parser.add_argument("--key", type=path, default=None, metavar="KEYFILE")


# the files a configuration reads besides the model and the key: (section, field)
CONFIG_INPUTS = (("readout", "mask_image"), ("forward", "token_file"), ("mqtt", "password_file"),
                 ("mqtt", "ca_file"), ("web", "token_file"))


def _inputs(args: argparse.Namespace, config) -> dict:
    """Every file the command reads, by the name the user knows it by (for edge.outputs.check_outputs)."""
    from edge.credentials import CREDENTIAL, credential_path

    found = {"SOURCE": getattr(args, "source", None), "--config": getattr(args, "config", None),
             "the model": config.model.path, "the task model": config.model.task, "the key": config.model.key}
    for section, name in CONFIG_INPUTS:
        found[f"{section}.{name}"] = getattr(getattr(config, section, None), name, None)
    for name, value in found.items():
        if isinstance(value, str) and value.startswith(CREDENTIAL) and "CREDENTIALS_DIRECTORY" in os.environ:
            found[name] = credential_path(value)
    source = config.source
    if getattr(source, "path", None):
        found["the source"] = source.path
    return found


def _outputs(config, inputs: dict, recording: str, results: str = "results.path") -> dict:
    """The files a run writes, for check_outputs: its recording (named ``recording``: a file, or a folder checked
    here), its results (named ``results``) and its events; two of them on one file are refused as an output on an
    input is."""
    found = {results: config.results.path, "events.path": getattr(config.events, "path", None)}
    return {**_recording(recording, config.record.path, {**inputs, **found}), **found}


def _check_source(config) -> None:
    """A source file or folder that is not there (or a recording that is not one) is refused now: before a key is
    made or a model compiled."""
    from pathlib import Path

    path = getattr(config.source, "path", None)
    if not path:
        return
    if config.source.kind == "recording":
        from edge.sources.recording import recording_files

        recording_files(Path(path))
    elif not Path(path).exists():
        raise ImageFileError(f"source '{path}' does not exist; check the path")


def _configuration(args: argparse.Namespace, **changes):
    """The configuration file (or the embedded default) with the command's options laid over it."""
    from edge.config import default_config, load_config, override

    config = load_config(args.config) if args.config else default_config()
    source = getattr(args, "source", None)
    if source is not None:
        from edge.sources import config_for_path

        changes["source"] = config_for_path(source)
    if getattr(args, "model", None) is not None:
        changes["model.path"] = str(args.model)
    if getattr(args, "key", None) is not None:
        changes["model.key"] = str(args.key)
    if getattr(args, "max_frames", None) is not None:
        changes["loop.max_frames"] = args.max_frames
    return override(config, **changes) if changes else config


def _recording(name: str, target, others: dict) -> dict:
    """A recording for ``check_outputs``: a .mcap file is an output like any; a folder of segments is left out of
    it and checked here: no input or other output (``others``) may be the folder or a segment in it, since keycam
    removes old segments."""
    if target in (None, ""):
        return {}
    from pathlib import Path

    from edge.errors import ConfigError
    from edge.recording.segments import segment_start
    from edge.sinks.recorder import is_folder

    if not is_folder(target):
        return {name: target}
    folder = Path(target).resolve()
    for what, value in others.items():
        where = Path(value).resolve() if value not in (None, "", "-") else None
        segment = where is not None and folder == where.parent and segment_start(where.name) is not None
        if where is not None and (folder == where or segment):
            raise ConfigError(f"{name} '{target}' holds {what} '{value}': keycam removes old segments there; "
                              f"record into another folder")
    return {}


EXIT_BY_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal's number, as shells report them


def _run(job, progress: bool = False) -> dict:
    from tqdm import tqdm

    failed = True
    try:
        with tqdm(unit="frame", desc="keycam", disable=not progress or None, leave=False, file=sys.stderr) as bar:
            job.run(progress=bar)
        failed = False
    finally:  # a run that failed after some frames says what it did, then (from main) its one-line error
        summary = job.last_summary
        if failed and summary is not None and summary["stopped_by"] == "end of source":
            summary["stopped_by"] = "error"  # a sink that failed as the run ended (a full disk at the last chunk)
        if summary is not None and (not failed or summary["frames"]):
            for line in job.summary_lines(summary):
                print(f"keycam: {line}", file=sys.stderr)
    return summary


def _startup(args: argparse.Namespace, config, recording: str = "record.path", results: str = "results.path") -> None:
    """What every capture command checks first, before a key is made or a model compiled: its outputs against its
    inputs (and each other), and its source (``validate-config`` makes these checks too)."""
    from edge.outputs import check_outputs

    inputs = _inputs(args, config)
    check_outputs(_outputs(config, inputs, recording, results=results), inputs, own_folder=config.model.folder)
    _check_source(config)


def run_command(args: argparse.Namespace) -> int:
    from edge.job import build_job

    config = _configuration(args)
    _startup(args, config)
    summary = _run(build_job(config))
    return EXIT_BY_SIGNAL.get(summary["stopped_by"], 0)


def record_command(args: argparse.Namespace) -> int:
    from edge.job import build_job

    config = _configuration(args, **{"record.path": str(args.output), "record.plain_debug": args.plain_debug})
    _startup(args, config, "OUT.mcap")
    if args.plain_debug:
        print("keycam record: WARNING: --plain-debug records PLAIN frames; anyone with the file sees the scene",
              file=sys.stderr)
    summary = _run(build_job(config, force=args.force))
    return EXIT_BY_SIGNAL.get(summary["stopped_by"], 0)


def replay_command(args: argparse.Namespace) -> int:
    from edge.job import build_job

    changes = {"results.path": args.output, "results.existing": "replace", "loop.realtime": args.realtime}
    if args.record is not None:
        changes["record.path"] = str(args.record)
    config = _configuration(args, **changes)
    _startup(args, config, "--record", results="--output")
    job = build_job(config, replay=True, force=args.force)
    summary = _run(job, progress=True)
    if summary["stopped_by"] in EXIT_BY_SIGNAL:
        return EXIT_BY_SIGNAL[summary["stopped_by"]]
    if job.source.damaged and not args.skip_damage:
        raise ImageFileError(f"'{args.source}' is damaged: its damaged frames were skipped (above); pass "
                             f"--skip-damage to accept what could be read")
    return 0


def preview_command(args: argparse.Namespace) -> int:
    from edge.job import build_job
    from edge.lab.preview import preview

    from edge.outputs import check_outputs

    config = _configuration(args)
    check_outputs({"-o": args.output}, _inputs(args, config), own_folder=config.model.folder)
    _check_source(config)
    job = build_job(config, replay=True)
    written = preview(job, args.output, frames=args.frames)
    print(f"keycam preview: WARNING: {written} shows PLAIN frames (key holders only); protect or delete it",
          file=sys.stderr)
    print(f"wrote {written}")
    return 0


def validate_command(args: argparse.Namespace) -> int:
    """The file's schema, and every check ``run`` makes of it at start (``_startup``, ``edge.job.check_config``):
    outputs against inputs, the source, the recording's path, forwarding's URL and token, the key, the models'
    manifests, roles and epochs, the answers' settings. Nothing is opened that would not be read, a camera or a
    server is not contacted, and nothing is written."""
    from edge.config import load_config
    from edge.job import check_config

    config = load_config(args.config)
    _startup(args, config)
    check_config(config)
    print(f"{args.config}: valid ({config.source.describe()}, model {config.model.path or 'default'})")
    return 0
