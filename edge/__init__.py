"""edge: the device core, and beside it the rooms that serve it.

The device core (top-level modules, ``sources/``, ``sinks/``, ``tasks/``, ``wire/``) is what runs on a
camera: the sensor (frame fitting and the one readout stage), the fast ADC transform (bit-exact with
``firmware_sim``), key epochs, the keyed-model runtime (onnxruntime only), the pipeline, the capture
loop, the job, configuration, metrics and recording. Beside it: ``server/`` (the inference server),
``lab/`` (verification, evaluations, demo, preview, attacks) and ``cli/`` (the ``keycam`` command
line). The core never imports those three, nor ``export`` (except the default model's first-run
compile, lazily). docs/architecture.md draws the rooms.
"""
