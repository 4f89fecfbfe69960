"""The lab: what runs beside the device, not on it.

``verify`` (a keyed model against its plain model), ``evaluate`` (the paper's table), ``datasets``
(labelled images that ship in packages), ``demo`` (the embedded default's readout demo), ``preview``
(key holders' picture strip) and ``attacks/`` (what an eavesdropper recovers). The device core
(``edge.loop``, ``edge.pipeline``, ``edge.sources``, ``edge.sinks``) never imports this package.
"""
