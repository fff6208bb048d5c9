"""Inference runtime: one Engine interface over TensorRT, ONNX Runtime and PyTorch, and the Pipeline.

Modules: ``engines`` (+ ``tensorrt_engine``, ``factory``), ``config`` (PipelineConfig), ``frames`` (what a
Pipeline takes and returns), ``boxes`` (which person boxes a frame uses), ``decode`` (one person's outputs
-> a placed body), ``pipeline`` (the per-frame steps), ``detector`` and ``bench``. The I/O contract with
the exported graph lives below this package, in ``whmr_core.graph_io``.
"""
