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
- ``vectors``     golden test vectors and the command that regenerates them
"""

SPEC_VERSION = 1
"""The version a spec has by default: a spec that uses no version-2 field is written as version 1."""

LATEST_SPEC_VERSION = 2
"""The newest version of docs/readout-spec.md (version 2 adds ``cfa`` and ``input_alignment``)."""
