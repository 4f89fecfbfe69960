"""firmware_sim: the reference model of keycam's sensor readout.

This package is the source of truth for what the sensor emits. It is written to
be obviously correct rather than fast: integer arithmetic, one address at a
time, exactly as ``docs/readout-spec.md`` describes. It imports nothing from
``edge`` or ``export``; both of those depend on it.

Modules:

- ``spec``        the versioned readout spec (bit depths, fixed-point transfer; version 2: the Bayer
                  mode and MSB-aligned input)
- ``cfa``         colour filter arrays: a 2x2 cell's photosites in the canonical order (R, Gr, Gb, B)
- ``keys``        the master key file, the key schedule (HKDF) and fingerprints
- ``permutation`` the keyed address permutation (AES-256 Feistel, cycle-walking)
- ``readout``     the streaming, integer-only readout model
- ``framing``     the letterbox as a frame holds it: a picture in a field of the pad code
- ``vectors``     golden test vectors and the command that regenerates them
- ``manifest``    the keyed model's manifest (``Manifest.refusal``: does this model fit this frame)
- ``words``       the words the packages and file formats share (task kinds, file names, suffixes, operators)
- ``registry``    the one registry class; ``errors`` the root of the error tree; ``files`` atomic writes
"""

SPEC_VERSION = 1
"""The version a spec has by default: a spec that uses no version-2 field is written as version 1."""

LATEST_SPEC_VERSION = 3
"""The newest version of docs/readout-spec.md (version 2 adds ``cfa`` and ``input_alignment``; version 3 privacy masks,
an input of the readout rather than a field of a spec, whose ``spec_version`` stays 1 or 2)."""
