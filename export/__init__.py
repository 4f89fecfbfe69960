"""export: where keyed models are made (the keyed ONNX rewrite, split, verification, packaging).

    keyify.py   the public API: KeyifyOptions, keyify(), KeyifyResult
    prepare/    the plain graph made ready: NCHW input, folded, every shape known
    compiler/   one compile's steps: inputs, the two policies (fresh, boundary), outputs, split, assemble
    passes/     the ``fresh`` rewrite, one pass per operator family, the maths in each docstring
    package/    deployment: the model files and manifests (save), a Triton repository entry (triton)
    layout.py   layouts themselves: the sensor's and the layers', from the key schedule
    errors.py   the compiler's errors
    finetune.py the attacker's best plain model (fine-tuned on scrambled images), for privacy figures
    zoo.py      reference networks with random weights, for exactness tests and speed benchmarks

Depends on ``firmware_sim`` for the key schedule and layouts; never imported by ``edge``'s
runtime path.
"""
