"""firmware_sim: the reference model of keycam's sensor readout.

This package is the source of truth for what the sensor emits. It is written to
be obviously correct rather than fast: integer arithmetic, one address at a
time, exactly as ``docs/readout-spec.md`` describes. It imports nothing from
``edge`` or ``export``; both of those depend on it.

Modules:

- ``spec``        the versioned readout spec (bit depths, fixed-point transfer)
- ``keys``        the master key file, the key schedule (HKDF) and fingerprints
- ``permutation`` the keyed address permutation (AES-256 Feistel, cycle-walking)
- ``readout``     the streaming, integer-only readout model
- ``vectors``     golden test vectors and the command that regenerates them
"""

SPEC_VERSION = 1
