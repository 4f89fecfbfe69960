"""Attacks on the keyed readout, run against keycam itself to measure what it protects (docs/privacy.md).

Each is measured side by side against the paper's readout and the sealed one (benchmarks/attacks_sealed.py):

- ``camera``: the victim camera, one sensor run under a spec (sealed or not), as the device reads out;
- ``known_plaintext``: chosen/known plaintexts recover the layout; one measurement's leakage; the
  ciphertext-only correlation of positions across frames;
- ``reassembly``: ciphertext only, to the end: the picture reassembled from a stream of measurements;
- ``statistics``: a key-independent classifier on permutation-invariant code statistics; the uniformity test;
- ``finetune``: the plain network fine-tuned on labelled measurements (PyTorch);
- ``stolen_model``: the readout order read from a keyed model file, without the key;
- ``inversion``: feature inversion at a split (PyTorch; benchmarks/feature_inversion.py).
"""
