"""export: where keyed models are made (the keyed ONNX rewrite, split, verification, packaging).

Depends on ``firmware_sim`` for the key schedule and layouts; never imported by ``edge``'s
runtime path.
"""
