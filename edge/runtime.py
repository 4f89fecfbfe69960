"""Running keyed models on the device with onnxruntime, checked against the key before the first frame.

:class:`KeyedModel` reads the model's manifest from its ONNX metadata through onnxruntime (the device
never needs the ``onnx`` package), refuses a key whose fingerprint differs from the one the model was
compiled for, refuses measurements that do not fit it (``Manifest.refusal``: another key, or another
epoch than its sensor tables are for), and checks every input's shape and dtype against the manifest.
For another key epoch it rebuilds only the sensor tables (:meth:`KeyedModel._rotate`); a model with
none reads every epoch as it is. For key holders, :meth:`KeyedModel.restore` puts dense outputs
(masks, heat maps, anchors) back in order (``edge.restore``).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.errors import FrameError, KeyMismatch, ModelError
from edge.frame import Frame
from edge.restore import Permutations, restore_output
from firmware_sim.errors import KeycamError
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import FINGERPRINT_KEY, METADATA_KEY, Manifest, shape_text
from firmware_sim.integrity import digest_of, file_digest
from firmware_sim.words import model_files

OPTIMISATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(threads: int | None = None, optimisation: str = "all", spinning: bool = True) -> ort.SessionOptions:
    """``spinning=False`` keeps idle worker threads from busy-waiting (a server shares its cores with HTTP)."""
    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimisation not in OPTIMISATION:
        raise ModelError(f"optimisation level {optimisation!r}; use one of {', '.join(OPTIMISATION)}")
    options.graph_optimization_level = OPTIMISATION[optimisation]
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def open_session(path: str | Path, threads: int | None = None, optimisation: str = "all",
                 spinning: bool = True) -> ort.InferenceSession:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model '{path}' does not exist")
    try:
        return ort.InferenceSession(str(path), session_options(threads, optimisation, spinning),
                                    providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"model '{path}' cannot be loaded by onnxruntime: {str(error).splitlines()[0]}") from None


def epoch_table(recipe: np.ndarray, inverse: np.ndarray, group: int = 1) -> np.ndarray:
    """A sensor table for the key epoch whose inverse sensor table is ``inverse`` (H*W entries), from its recipe.

    A recipe entry ``r`` names position ``r // group`` and code ``r % group`` of it (``group``: codes a
    position, ``Manifest.table_groups``; 1 for tables of positions); the entry becomes
    ``inverse[r // group]·group + r % group``. Entries past the positions (pad rows) stay as they are. The
    table keeps the recipe's shape and dtype."""
    size = inverse.size
    position, code = np.divmod(recipe, group)
    rebuilt = inverse[np.clip(position, 0, size - 1)] * group + code
    return np.where(position < size, rebuilt, recipe).astype(recipe.dtype)


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> digest: a file checked once


def check_model_file(path: str | Path, manifest: Manifest) -> None:
    """Refuse a keyed model whose bytes are not the ones it was written with (``Manifest.model_sha256``,
    ``firmware_sim.integrity``), in one line; a model of before the digest existed is taken as it is."""
    if not manifest.model_sha256:
        return
    path = Path(path)
    info = path.stat()
    token = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if _VERIFIED.get(token) == manifest.model_sha256:
        return
    if digest_of(path.read_bytes()) != manifest.model_sha256:
        raise ModelError(f"model '{path}' is damaged: its bytes do not match the digest it was written with; copy it "
                         f"again from where it was made, or compile it again")
    _VERIFIED[token] = manifest.model_sha256


def load_recipes(path: Path, manifest: Manifest, where: str) -> dict[str, np.ndarray]:
    """The epoch recipes beside a model (``KEYED.epochs.npz``), checked against the manifest's digest and, table by
    table, against what the manifest says they are; a damaged file is refused in one line."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(f"{where}: its epoch recipes '{path}' cannot be read ({error.strerror})") from None
    if manifest.epochs_sha256 and file_digest(data) != manifest.epochs_sha256:
        raise ModelError(f"{where}: its epoch recipes '{path}' are damaged (their digest does not match the "
                         f"manifest's); compile the model again")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            tables = {name: archive[f"t{index}"] for index, name in enumerate(manifest.sensor_tables)}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ModelError(f"{where}: its epoch recipes '{path}' cannot be read ({type(error).__name__}); compile the "
                         f"model again") from None
    for name, table in tables.items():
        if table.dtype.kind not in "iu" or table.size == 0 or table.min() < 0:
            raise ModelError(f"{where}: the epoch recipe of '{name}' in '{path}' is not a table of indices "
                             f"({table.dtype}, {table.size} entries); compile the model again")
    return tables


def read_manifest(session: ort.InferenceSession, source: str) -> Manifest | None:
    metadata = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in metadata:
        return None
    try:
        return Manifest.from_json(metadata[METADATA_KEY], source=f"the manifest of '{source}'")
    except KeycamError as error:
        raise ModelError(str(error)) from None


class KeyedModel:
    """A keyed model (full, feature or task) loaded for inference."""

    def __init__(self, path: str | Path, key: MasterKey | None = None, *, threads: int | None = None,
                 optimisation: str = "all", epoch: int | None = None) -> None:
        self.path = Path(path)
        self.threads, self.optimisation = threads, optimisation
        self.session = open_session(path, threads, optimisation)
        manifest = read_manifest(self.session, str(path))
        if manifest is None:
            raise ModelError(f"model '{path}' is not a keyed model (no keycam manifest); compile it with "
                             f"`keycam keyify`")
        self.manifest = manifest
        check_model_file(self.path, manifest)  # a changed byte anywhere in the file: refused before any frame
        recipes = model_files(self.path).epochs
        if manifest.epochs_sha256 and manifest.epoch_rotation and recipes.is_file():  # its sidecar, checked now too
            load_recipes(recipes, manifest, f"model '{path}'")
        stored = self.session.get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY)
        if stored != manifest.key_fingerprint:
            raise ModelError(f"model '{path}' has inconsistent fingerprints in its metadata; re-run keycam keyify")
        if key is not None and key.fingerprint != manifest.key_fingerprint:
            raise KeyMismatch(
                f"model '{path}' is keyed for {manifest.key_fingerprint}, the key is {key.fingerprint}; "
                f"use the model's key or compile the model again with this one"
            )
        self.key = key
        self._perms: Permutations | None = None  # the output layouts' permutations, built on first restore
        self.epoch = manifest.epoch  # the epoch of the measurements it reads (any, without sensor tables)
        self.rebuild_seconds = 0.0
        self._overrides: list = []
        if epoch is not None and epoch != manifest.epoch:
            if manifest.sensor_tables:
                self._rotate(epoch)
            else:
                self.epoch = epoch
        self.input = self.session.get_inputs()[0]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _rotate(self, epoch: int) -> None:
        """Rebuild the tables that depend on the sensor layout for key epoch ``epoch`` (export/package/save.py).

        Table N is ``inv_E[recipe]`` where the recipe holds logical input positions (pad rows, >= H*W,
        stay), or, for a table of code indices (``manifest.table_groups``, g codes a position),
        ``inv_E[recipe // g]·g + recipe % g`` (:func:`epoch_table`): the rest of the model is untouched.
        The rebuilt tables override the model's initializers in a new onnxruntime session.
        """
        import time

        from firmware_sim.permutation import inverse_table, permutation_table

        manifest = self.manifest
        if self.key is None:
            raise KeyMismatch(f"rebuilding '{self.path}' for key epoch {epoch} needs its key")
        sidecar = model_files(self.path).epochs
        if not manifest.epoch_rotation or not sidecar.is_file():
            raise ModelError(f"model '{self.path}' cannot be rebuilt for key epoch {epoch} (no {sidecar.name}); "
                             f"compile it again with `keycam keyify --epoch {epoch}`")
        start = time.perf_counter()
        height, width = manifest.input.shape[1], manifest.input.shape[2]
        size = height * width
        inverse = inverse_table(permutation_table(self.key.sensor_key(height, width, epoch), size))
        options = session_options(self.threads, self.optimisation)
        recipes = load_recipes(sidecar, manifest, f"model '{self.path}'")
        for name in manifest.sensor_tables:
            table = epoch_table(recipes[name], inverse, manifest.table_groups.get(name, 1))
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(table))
            self._overrides.append(value)  # must outlive the session's creation
            options.add_initializer(name, value)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own exception types
            raise ModelError(f"model '{self.path}' rejected the rebuilt tables: {str(error).splitlines()[0]}") from None
        self.epoch = epoch
        self.rebuild_seconds = time.perf_counter() - start

    @property
    def fingerprint(self) -> str:
        return self.manifest.key_fingerprint

    @property
    def epoch_free(self) -> bool:
        """True when the model reads measurements of every key epoch as it is (it holds no sensor table)."""
        return not self.manifest.sensor_tables

    def _check(self, data: np.ndarray) -> np.ndarray:
        manifest = self.manifest
        if manifest.role == "task":
            expected = manifest.split.features.shape
            dtype = np.dtype(np.float32)
        else:
            expected = manifest.input.shape
            dtype = np.dtype(manifest.input.dtype)
        if data.ndim == len(expected) - 1:
            data = data[np.newaxis]  # one frame -> a batch of one
        shape_ok = data.ndim == len(expected) and all(e is None or e == a for e, a in zip(expected, data.shape))
        if not shape_ok:
            raise ModelError(f"model '{self.path}' takes input of shape {shape_text(expected)}, got {data.shape}")
        if data.dtype != dtype:
            raise ModelError(f"model '{self.path}' takes {dtype} input, got {data.dtype}")
        return np.ascontiguousarray(data)

    def run(self, data: np.ndarray | Frame) -> list[np.ndarray]:
        """Outputs for one measurement (H, W, C), a batch (N, H, W, C), a measured :class:`Frame`, or a task
        model's features. A frame that does not fit the model (``Manifest.refusal``: measured with another key,
        or in another key epoch than its sensor tables are for) is refused before anything is computed."""
        if isinstance(data, Frame):
            if not data.measured:
                raise ModelError(f"frame {data.sequence} is a plain frame; model '{self.path}' takes measurements "
                                 f"(read it out first: edge.sensor.Readout)")
            reason = self.manifest.refusal(data.fingerprint, None if self.manifest.role == "task" else data.epoch,
                                           self.epoch)
            if reason is not None:
                raise KeyMismatch(f"frame {data.sequence} does not fit model '{self.path}': {reason}; use the "
                                  f"frame's own model and key")
            try:
                checked = self._check(data.image)
            except ModelError as error:  # this frame's shape or depth (a recording that changes): the frame's error
                raise FrameError(str(error)) from None
            return self.session.run(self.output_names, {self.input.name: checked})
        return self.session.run(self.output_names, {self.input.name: self._check(data)})

    def named(self, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs of :meth:`run`, by name."""
        return dict(zip(self.output_names, outputs))

    def restore(self, outputs: list[np.ndarray], epoch: int | None = None) -> list[np.ndarray]:
        """Dense outputs back in natural order (needs the key), for measurements of key epoch ``epoch`` (default:
        the epoch the model reads)."""
        if self.key is None:
            raise KeyMismatch(f"restoring the outputs of '{self.path}' needs its key")
        specs = {o.name: o for o in self.manifest.outputs}
        if self._perms is None:
            self._perms = Permutations(self.key)  # built once, kept for the next frame
        epoch = self.epoch if epoch is None else epoch
        return [restore_output(out, specs[name], self._perms, epoch) if name in specs else out
                for name, out in zip(self.output_names, outputs)]
