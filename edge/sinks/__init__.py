"""Sinks: where results and measurements go. One small interface (``base.Sink``), one file each."""
