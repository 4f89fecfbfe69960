"""A keyed model's bytes as it is written: its manifest, with the digests of the model and of its epoch recipes.

Every writer of keyed models (``save``, ``keycam quantize``, ``keycam export triton``) serialises through
:func:`stamped`, so every keyed model file carries its own digest (``firmware_sim.integrity``): the device
and the server check it when they load the model, and the epoch recipes against ``epochs_sha256``.
"""

from __future__ import annotations

import onnx

from firmware_sim.integrity import PLACEHOLDER, file_digest, stamp
from firmware_sim.manifest import METADATA_KEY, Manifest


def stamped(model: onnx.ModelProto, manifest: Manifest, epochs: bytes | None = None) -> tuple[bytes, Manifest]:
    """(the model's bytes, its final manifest): the manifest in its metadata holds the model's digest and, when
    ``epochs`` (the recipes file's bytes) is given, theirs (else the manifest's own, if it has one)."""
    recipes = file_digest(epochs) if epochs is not None else manifest.epochs_sha256
    placed = manifest.model_copy(update={"model_sha256": PLACEHOLDER, "epochs_sha256": recipes})
    entry = next((p for p in model.metadata_props if p.key == METADATA_KEY), None)
    if entry is None:
        entry = model.metadata_props.add()
        entry.key = METADATA_KEY
    entry.value = placed.to_json()
    data, digest = stamp(model.SerializeToString())
    return data, placed.model_copy(update={"model_sha256": digest})
