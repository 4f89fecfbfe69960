"""Packaging keyed models for deployment: the model files with their manifests (``save``), and a
Triton / KServe model repository entry (``triton``)."""
