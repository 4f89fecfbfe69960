"""edge: what runs on the device.

The fast, vectorised ADC transform (bit-exact with ``firmware_sim``), frame and
measurement I/O, and the ``keycam`` command line. It depends on
``firmware_sim`` for the spec and the key schedule, never the other way round.
"""
