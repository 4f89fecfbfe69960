"""A model repository in Triton's layout, loaded with onnxruntime: what ``keycam serve`` serves.

    DIR/
      NAME/
        config.pbtxt        (Triton's; the embedded server reads the model itself and ignores it)
        1/model.onnx
        2/model.onnx        (versions are positive integers; a request without one gets the highest)

Each version is checked when the server starts. A broken one (no ``model.onnx``: an interrupted
export; a file onnxruntime cannot load, or a keyed model whose digest fails; a version folder that
is not a positive integer; a model folder that is not a model name) is skipped in one line naming
the path, and the rest is served; a model left with no version is skipped the same way, and a
repository with nothing left to serve stops the server. Hidden folders (``.1.xxxx.tmp``: the
staging folder of an export that was killed) are not versions. Two folders that are the same
version (``1`` and ``01``) stop the server with one line naming both, since either could be meant;
so does a sealed model that the server's ``--key`` cannot open. Inputs are checked against the
model's own metadata (names, datatypes, ranks, fixed dimensions) before onnxruntime sees them, and
a keyed model's manifest (its key fingerprint, role, epoch) is published in its metadata so that a
device can refuse a server keyed for someone else; a model whose sealed measurements the server opens
says so there too (``keycam_opens_seals``), since a device forwards sealed measurements only then.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import FrameError, ModelError, ProtocolError
from edge.frame import Frame
from edge.runtime import check_model_file, open_session, read_manifest
from edge.seal import Opener, Seal
from edge.wire.codec import DATATYPES, ONNX_TYPES, datatype_name
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest

log = logging.getLogger(__name__)
MODEL_FILE = "model.onnx"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class TensorInfo:
    name: str
    datatype: str
    shape: list[int]  # -1 for a dynamic dimension

    def to_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _tensor_info(node, path: Path) -> TensorInfo:
    if node.type not in ONNX_TYPES:
        raise ModelError(f"model '{path}': tensor '{node.name}' has element type {node.type}, which the "
                         f"server cannot carry; use a numeric tensor")
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in node.shape]
    return TensorInfo(node.name, ONNX_TYPES[node.type], shape)


@dataclass
class ServedModel:
    """One version of one model, ready to run."""

    name: str
    version: str
    path: Path
    threads: int | None = None
    concurrency: int = 1
    key: MasterKey | None = field(default=None, repr=False)  # opens sealed measurements (keycam serve --key)
    session: object = field(init=False, repr=False)
    manifest: Manifest | None = field(init=False)
    inputs: list[TensorInfo] = field(init=False)
    outputs: list[TensorInfo] = field(init=False)

    def __post_init__(self) -> None:
        self.session = open_session(self.path, self.threads, spinning=False)
        self.manifest = read_manifest(self.session, str(self.path))
        if self.manifest is not None:
            check_model_file(self.path, self.manifest)  # a damaged keyed model is refused, never served
        self.opener: Opener | None = None  # set by the repository (open_sealed), once the file has loaded
        self.inputs = [_tensor_info(n, self.path) for n in self.session.get_inputs()]
        self.outputs = [_tensor_info(n, self.path) for n in self.session.get_outputs()]
        self._slots = threading.BoundedSemaphore(max(1, self.concurrency))

    def open_sealed(self) -> Opener | None:
        """What opens this model's sealed measurements, or None for a model that reads unsealed ones; a
        ModelError when the server's --key cannot open them (the command's fault, not the file's)."""
        manifest = self.manifest
        if manifest is None or not manifest.spec.is_sealed or manifest.role == "task":
            return None
        where = f"model '{self.name}' version {self.version}"
        if self.key is None:
            raise ModelError(f"{where} reads sealed measurements ({manifest.spec.seal}); serve it with --key KEYFILE, "
                             f"the key it was keyed for, to open them")
        if self.key.fingerprint != manifest.key_fingerprint:
            raise ModelError(f"{where} is keyed for {manifest.key_fingerprint}, --key is {self.key.fingerprint}; "
                             f"give the key it was keyed for")
        return Opener(self.key, manifest.spec)

    def open_inputs(self, inputs: dict[str, np.ndarray], parameters: dict) -> dict[str, np.ndarray]:
        """The request's measurement opened (``keycam_seal``: the seal of its one frame); unchanged for a model
        that reads unsealed measurements. A seal that is missing, damaged or replayed is a 400."""
        if self.opener is None:
            return inputs
        where = f"model '{self.name}' version {self.version}"
        name, data = next(iter(inputs.items()))  # a keyed model takes one input: the measurement
        text = parameters.get("keycam_seal")
        if not isinstance(text, str) or data.ndim < 1 or data.shape[0] != 1:
            raise ProtocolError(f"{where} reads sealed measurements: send one frame a request with its seal in the "
                                f"parameter keycam_seal")
        try:
            seal = Seal.from_hex(text)
            frame = Frame(data[0], seal.header.sequence, seal.header.timestamp_ns, "request", measured=True,
                          epoch=seal.header.epoch, fingerprint=seal.header.fingerprint, seal=seal)
            opened = self.opener.open(frame).image
        except FrameError as error:
            raise ProtocolError(f"{where}: {error}") from None
        return {name: opened[np.newaxis]}

    @property
    def fingerprint(self) -> str | None:
        return self.manifest.key_fingerprint if self.manifest else None

    def parameters(self) -> dict:
        """What a device checks before it forwards anything: the key fingerprint and the manifest."""
        if self.manifest is None:
            return {}
        return {"keycam_fingerprint": self.manifest.key_fingerprint, "keycam_role": self.manifest.role,
                "keycam_epoch": self.manifest.epoch, "keycam_manifest": self.manifest.to_json()}

    def check(self, inputs: dict[str, np.ndarray], parameters: dict) -> None:
        """Raise a 400 ``ProtocolError`` unless ``inputs`` are exactly what the model takes."""
        where = f"model '{self.name}' version {self.version}"
        wanted = {t.name for t in self.inputs}
        unknown = sorted(set(inputs) - wanted)
        if unknown:
            raise ProtocolError(f"{where} has no input {unknown[0]!r}; its inputs are {sorted(wanted)}")
        for info in self.inputs:
            if info.name not in inputs:
                raise ProtocolError(f"{where}: input '{info.name}' is missing")
            array = inputs[info.name]
            if array.dtype != DATATYPES[info.datatype]:
                raise ProtocolError(f"{where}: input '{info.name}' is {info.datatype}, the request sent "
                                    f"{datatype_name(array.dtype)}")
            fits = array.ndim == len(info.shape) and all(d < 0 or d == a for d, a in zip(info.shape, array.shape))
            if not fits:
                raise ProtocolError(f"{where}: input '{info.name}' has shape {info.shape} (-1: any), the request "
                                    f"sent {list(array.shape)}")
            if array.ndim and array.shape[0] == 0:
                raise ProtocolError(f"{where}: input '{info.name}' has an empty batch")
        fingerprint = parameters.get("keycam_fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise ProtocolError(f"{where}: parameter keycam_fingerprint is {fingerprint!r} "
                                f"({type(fingerprint).__name__}); send the key's fingerprint as a string, e.g. kc1:...")
        epoch = parameters.get("keycam_epoch")
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
            raise ProtocolError(f"{where}: parameter keycam_epoch is {epoch!r} ({type(epoch).__name__}); send the "
                                f"key epoch as a whole number >= 0")
        reason = self.manifest.refusal(fingerprint or "", epoch) if self.manifest is not None else None
        if reason is not None:
            raise ProtocolError(f"{where} does not take this request: {reason}; send it to a model compiled for its "
                                f"key and epoch (or rotate keys with a split model: its task model reads every epoch)")

    def run(self, inputs: dict[str, np.ndarray], wanted: list[str] | None = None) -> dict[str, np.ndarray]:
        names = [o.name for o in self.outputs] if wanted is None else wanted
        with self._slots:  # at most `concurrency` runs of this model at once; each uses `threads` threads
            values = self.session.run(names, inputs)
        return dict(zip(names, values))

    def metadata(self, versions: list[str]) -> dict:
        document = {"name": self.name, "versions": versions, "platform": "onnxruntime_onnx",
                    "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}
        parameters = self.parameters()
        if self.opener is not None:  # it opens sealed measurements (--key): a device forwards them only then
            parameters["keycam_opens_seals"] = True
        if parameters:
            document["parameters"] = parameters
        return document

    def config(self) -> dict:
        """The model's configuration as Triton's model-configuration extension shows it (JSON)."""
        def tensor(t: TensorInfo) -> dict:
            return {"name": t.name, "data_type": "TYPE_" + t.datatype,
                    "dims": [str(d) for d in t.shape]}

        document = {"name": self.name, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
                    "max_batch_size": 0, "input": [tensor(t) for t in self.inputs],
                    "output": [tensor(t) for t in self.outputs],
                    "instance_group": [{"count": max(1, self.concurrency), "kind": "KIND_CPU"}]}
        parameters = self.parameters()
        if parameters:
            document["parameters"] = {k: {"string_value": str(v)} for k, v in parameters.items()}
        return document


class ModelRepository:
    """Every version of every model under one directory, loaded at start; ``skipped``: what could not be, in words."""

    def __init__(self, root: str | Path, *, threads: int | None = None, concurrency: int = 1,
                 key: MasterKey | None = None) -> None:
        self.root = Path(root)
        self.key, self.threads, self.concurrency = key, threads, concurrency
        if not self.root.is_dir():
            raise ModelError(f"model repository '{self.root}' is not a directory; create one with "
                             f"`keycam export triton MODEL.onnx --name NAME --repository {self.root}`")
        self.models: dict[str, dict[str, ServedModel]] = {}
        self.skipped: list[str] = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not NAME.match(folder.name):
                self._skip(f"model repository '{self.root}': folder name {folder.name!r} is not a valid model name "
                           f"(letters, digits, '_', '.', '-'); rename it")
                continue
            versions = self._versions_of(folder)
            if versions:
                self.models[folder.name] = dict(sorted(versions.items(), key=lambda kv: int(kv[0])))
            else:
                self._skip(f"model '{folder.name}' in '{self.root}' has no version folder with a loadable "
                           f"{MODEL_FILE} (expected '{folder / '1' / MODEL_FILE}')")
        if not self.models:
            why = f" ({len(self.skipped)} skipped: {self.skipped[0]})" if self.skipped else ""
            raise ModelError(f"model repository '{self.root}' holds no models{why}; add one with "
                             f"`keycam export triton MODEL.onnx --name NAME --repository {self.root}`")

    def _skip(self, reason: str) -> None:
        """Something in the repository cannot be served: one line, and the rest is served."""
        log.warning("keycam serve: skipped %s", reason)
        self.skipped.append(reason)

    def _versions_of(self, folder: Path) -> dict[str, ServedModel]:
        """The model's loadable versions; a broken one is skipped in one line. Folders '1' and '01' (the same
        version) are refused, naming both. Hidden folders (an export's staging folder) are not versions."""
        seen: dict[int, str] = {}
        versions = {}
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not sub.name.isdigit() or int(sub.name) < 1:
                self._skip(f"model '{folder.name}': version folder {sub.name!r} is not a positive integer")
                continue
            number = int(sub.name)
            if number in seen:
                raise ModelError(f"model '{folder.name}': version folders {seen[number]!r} and {sub.name!r} are "
                                 f"both version {number}; remove or rename one")
            seen[number] = sub.name
            if not (sub / MODEL_FILE).is_file():
                self._skip(f"model '{folder.name}' version {number}: '{sub / MODEL_FILE}' is missing (an interrupted "
                           f"export? export it again)")
                continue
            try:
                model = ServedModel(folder.name, str(number), sub / MODEL_FILE, self.threads, self.concurrency,
                                    self.key)
            except ModelError as error:  # unloadable, damaged, not a model: this version only
                self._skip(f"model '{folder.name}' version {number}: {error}")
                continue
            model.opener = model.open_sealed()  # a sealed model the --key cannot open: the server refuses to start
            versions[str(number)] = model
        return versions

    def versions(self, name: str) -> list[str]:
        return list(self._versions(name))

    def _versions(self, name: str) -> dict[str, ServedModel]:
        if name not in self.models:
            raise ProtocolError(f"unknown model {name!r}; this server has {sorted(self.models)}", status=404)
        return self.models[name]

    def get(self, name: str, version: str | None = None) -> ServedModel:
        versions = self._versions(name)
        if version in (None, ""):
            return versions[next(reversed(versions))]
        if version not in versions:
            raise ProtocolError(f"model {name!r} has no version {version!r}; it has {list(versions)}", status=404)
        return versions[version]
