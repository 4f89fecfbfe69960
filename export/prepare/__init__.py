"""Preparing a plain ONNX model for the compiler (``graph.prepare``, the steps in order in its docstring).

``graph``: load, fix the input, fold, infer every shape, giving a :class:`~export.prepare.graph.PlainGraph`;
``channels_last``: a channels-last (TensorFlow) input rewritten to an exact NCHW one;
``repeat``: nearest up-sampling written as data movement, rewritten to one Resize;
``probe``: asking onnxruntime what a plain operator does (shapes, pool divisors, resize weights).
"""
