"""Attacks on the keyed readout, run against keycam itself to measure what it protects (docs/privacy.md).

- ``known_plaintext``: chosen/known plaintexts recover the layout; one measurement's leakage; the
  ciphertext-only correlation of positions across frames;
- ``reassembly``: ciphertext only, to the end: the picture reassembled from a stream of measurements.
"""
