"""The inference graph exports to ONNX (legacy exporter, opset 17, dynamic person batch) and ONNX Runtime
reproduces PyTorch within 1e-4."""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from whmr_core import geometry
from whmr_core.export.graph import InferenceGraph
from whmr_core.export.onnx_export import export_onnx
from whmr_core.graph_io import INPUT_NAMES, OUTPUT_NAMES
from whmr_core.model import build_model
from whmr_core.model.config import config_from_dict


def _export_and_compare(model, tmp_path, n_run: int = 3) -> float:
    graph = InferenceGraph(model.eval())
    path = tmp_path / "whmr.onnx"
    t0 = time.perf_counter()
    export_onnx(model, path, opset=17, example_batch=2)  # the runtime's export path (onnxslim included)
    elapsed = time.perf_counter() - t0
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    assert proto.opset_import[0].version == 17
    g = torch.Generator().manual_seed(3)
    crops = torch.randn(n_run, 3, *model.crop_hw, generator=g)
    gi = geometry.glob_info(
        torch.tensor([[300.0, 200.0]]).repeat(n_run, 1) + torch.rand(n_run, 2, generator=g) * 50,
        torch.full((n_run,), 150.0),
        torch.tensor([[640.0, 480.0]]).repeat(n_run, 1),
    )
    rc = geometry.camera_rotation_from_gravity(
        torch.randn(n_run, 3, generator=g) * 0.2 + torch.tensor([0, 1.0, 0])
    )
    with torch.no_grad():
        ref = graph(crops, gi, rc)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, dict(zip(INPUT_NAMES, (crops.numpy(), gi.numpy(), rc.numpy()), strict=True)))
    for name, r, o in zip(OUTPUT_NAMES, ref, got, strict=True):
        assert o.shape == tuple(r.shape), name
        np.testing.assert_allclose(o, r.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)
    return elapsed


@pytest.mark.slow
def test_small_cpu_exports_and_matches_onnxruntime(net_body, tmp_path):
    torch.manual_seed(0)
    _export_and_compare(build_model("small-cpu", net_body), tmp_path)


@pytest.mark.slow
def test_param_variant_exports_and_matches_onnxruntime(net_body, tmp_path):
    torch.manual_seed(0)
    cfg = config_from_dict({"base": "small-cpu", "name": "small-param", "variant": "param"})
    _export_and_compare(build_model(cfg, net_body), tmp_path, n_run=1)


def test_aux_heads_are_not_in_the_inference_graph(net_body):
    model = build_model("small-cpu", net_body).eval()
    graph = InferenceGraph(model)
    h, w = model.crop_hw
    called = []
    hook = model.aux_heads.register_forward_hook(lambda *a: called.append(1))
    with torch.no_grad():
        out = graph(torch.zeros(1, 3, h, w), torch.tensor([[0.0, 0.0, 0.3, 0.8, 0.6]]), torch.eye(3)[None])
    hook.remove()
    assert called == [] and len(out) == len(OUTPUT_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r50-hybrid", "vitb-hybrid", "vitb-param", "vitb-param-release"])
def test_big_configs_export_and_match_onnxruntime(big_model, tmp_path, name):
    """Every op of each big config's graph. A ViT-B exports 2 of its 12 transformer blocks: the other ten
    are copies of the same block, and the full depth cost ~20 s per config in tracing, slimming and
    checking 350 MB of weights."""
    model = big_model(name)
    blocks = getattr(model.backbone, "blocks", None)
    if blocks is not None:
        model.backbone.blocks = blocks[:2]
    try:
        _export_and_compare(model, tmp_path, n_run=1)
    finally:
        if blocks is not None:
            model.backbone.blocks = blocks
