"""Tasks: turning a model's output tensors into answers."""

from edge.tasks.summary import summarise

__all__ = ["summarise"]
