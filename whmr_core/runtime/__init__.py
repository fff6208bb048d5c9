"""Inference runtime: one Engine interface over TensorRT, ONNX Runtime and PyTorch, and the Pipeline."""

from whmr_core.runtime.io_spec import INPUT_NAMES, OUTPUT_NAMES

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES"]
