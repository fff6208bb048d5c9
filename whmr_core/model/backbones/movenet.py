"""MoveNet Thunder's MobileNetV2+FPN trunk as plain torch modules, rebuilt from the committed ONNX file.

The pose model ``whmr_core/assets/pose_models/movenet-thunder.onnx`` (Apache-2.0, sha256-checked by
``whmr_core.runtime.pose_models``) learnt its features on real people (COCO keypoints). This module reads
its graph with the ``onnx`` package and interprets the part between the normalised NCHW input and the
feature pyramid's outputs: Conv (dense and depthwise, BatchNorm already folded in by the exporter), Clip
(ReLU6), Relu, Add and 2x bilinear Resize. The weights are stored fp16 with Cast nodes; they are cast to
float32 here. No onnx2torch and no TensorFlow at run time.

The weights are frozen and held as non-persistent buffers: the optimiser never sees them (the folded
convolutions reach |w| ~ 150, and Adam at 1e-4 moved the FPN features by 44-177 % in one step, see
``../shared/pretrained/PROBE.md``), and checkpoints do not carry them: every build reads the checked file.

With ``tune_fpn`` (issue 23's low-rate schedule) the trunk is split where the FPN reads MobileNetV2: a
frozen part (input -> the four maps at strides 4, 8, 16, 32, ``FPN_INPUTS``) and a tuned part (those four
-> the FPN's outputs and, with ``keypoint_maps``, MoveNet's heads). Each convolution of the tuned part is
``w = w0 + rms(w0) * delta`` (per output channel; the bias with the rms of the layer's bias), ``w0`` still a
non-persistent buffer read from the file and ``delta`` a parameter that starts at 0: the network starts as
the frozen one, Adam's step moves every layer by about its learning rate relative to its own scale
(the raw weights span 1e-3 to 150), and checkpoints carry the deltas only. The tuned part's learning rate is
the stage's times ``lr_scale`` (``backbone.tune_lr_scale``).

The backbone returns the FPN's three top-down maps, coarse to fine: stride 16, 8 and 4 (the stride-4 map
is the one every MoveNet head reads). Input: whmr's ImageNet-normalised crops; the affine map to MoveNet's
``x * 0.00784302 - 1`` on 0-255 RGB is taken from the graph's own constants.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FPN_INPUTS",
    "FPN_OUTPUTS",
    "KEYPOINT_HEADS",
    "MOVENET_INPUT",
    "MOVENET_NORMALISED",
    "MoveNetBackbone",
    "OnnxTrunk",
    "read_trunk",
]

_P = "StatefulPartitionedCall/center_net_mobile_net_v2fpn_feature_extractor/model_1/"
# The graph's normalised NHWC input (x * 0.00784302 - 1) and its NCHW transpose, where the trunk starts.
MOVENET_NORMALISED = "StatefulPartitionedCall/sub_1:0"
MOVENET_INPUT = _P + "model/Conv1_relu/Relu6/BiasAdd__15:0"
# The FPN's top-down outputs, coarse to fine (strides 16, 8, 4): Phi_1..Phi_3's inputs.
FPN_OUTPUTS = (_P + "re_lu/Relu/Relu:0", _P + "re_lu_1/Relu/Relu:0", _P + "re_lu_2/Relu/Relu:0")
FPN_STRIDES = (16, 8, 4)
# The MobileNetV2 maps the FPN reads (strides 4, 8, 16, 32; 40, 56, 112 and 1280 channels): where the tuned
# part of a ``tune_fpn`` backbone starts and what its feature cache holds.
FPN_INPUTS = (
    _P + "model/block_2_add/add:0",
    _P + "model/block_5_add/add:0",
    _P + "model/block_9_add/add:0",
    _P + "model/out_relu/Relu6/Relu6:0",
)
# MoveNet's keypoint heads on the stride-4 map: heatmap logits (17 COCO joints; the graph's sigmoid is
# applied here) and per-joint (y, x) offsets in stride-4 cells (34).
KEYPOINT_HEADS = (
    "StatefulPartitionedCall/kpt_heatmap_0/conv2d_5/BiasAdd/BiasAdd:0",
    "StatefulPartitionedCall/kpt_offset_0/conv2d_7/BiasAdd/BiasAdd:0",
)
# The constants of the graph's input normalisation: (x - sub) * mul - offset on 0-255 RGB.
_NORM_CONSTANTS = ("Const_39:0", "Const_40:0", "Const_41:0")


@dataclass(frozen=True)
class _Op:
    kind: str  # "conv", "clip", "relu", "add", "resize"
    inputs: tuple[str, ...]
    output: str
    attrs: dict


@dataclass(frozen=True)
class TrunkSpec:
    """The interpreted sub-graph: ops in execution order, float32 constants, input normalisation."""

    ops: tuple[_Op, ...]
    constants: dict[str, np.ndarray]
    norm_scale: np.ndarray  # (3,) per-channel multiplier on 0-255 RGB
    norm_offset: np.ndarray  # (3,) then added


def _constants(graph) -> dict[str, np.ndarray]:
    """Initializers and the Cast nodes of initializers (fp16-stored weights), as float32 arrays."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    return {k: np.asarray(v, dtype=np.float32) if v.dtype.kind == "f" else v for k, v in consts.items()}


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


@functools.lru_cache(maxsize=4)
def read_trunk(
    path: str, start: str | tuple[str, ...] = MOVENET_INPUT, outputs: tuple[str, ...] = FPN_OUTPUTS
) -> TrunkSpec:
    """Parse the sub-graph of ``path`` from tensor ``start`` (or the tensors of a tuple) to ``outputs``
    (cached per process). A path from the outputs back to anything but the start tensors and constants is
    an error (an op the reader does not know, or a tensor nothing produces)."""
    import onnx

    starts = (start,) if isinstance(start, str) else tuple(start)
    graph = onnx.load(path).graph
    consts = _constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    # Nodes the outputs need, found backwards and stopped at ``start`` and at constants.
    needed: set[int] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen or name in starts or name in consts:
            continue
        seen.add(name)
        if name not in producer:
            raise ValueError(f"{path}: tensor {name!r} is neither produced nor the trunk's input")
        node = producer[name]
        needed.add(id(node))
        stack.extend(i for i in node.input if i)
    ops = []
    for node in graph.node:  # ONNX nodes are stored in topological order
        if id(node) not in needed:
            continue
        a, ins, out = _attrs(node), tuple(node.input), node.output[0]
        if node.op_type == "Conv":
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ValueError(f"{path}: Conv {out!r} uses auto_pad; only explicit pads are read")
            ops.append(_Op("conv", ins, out, a))
        elif node.op_type == "Clip":
            lo, hi = (float(consts[n]) for n in ins[1:3])
            ops.append(_Op("clip", ins[:1], out, {"min": lo, "max": hi}))
        elif node.op_type == "Relu":
            ops.append(_Op("relu", ins, out, {}))
        elif node.op_type == "Add":
            ops.append(_Op("add", ins, out, {}))
        elif node.op_type == "Resize":
            mode, ctm = a.get("mode", b"nearest"), a.get("coordinate_transformation_mode", b"half_pixel")
            scales = consts[ins[2]] if len(ins) > 2 and ins[2] else None
            if mode != b"linear" or ctm != b"half_pixel" or scales is None or tuple(scales[:2]) != (1, 1):
                raise ValueError(f"{path}: Resize {out!r}: only linear half_pixel resizing by scales is read")
            ops.append(_Op("resize", ins[:1], out, {"scale": (float(scales[2]), float(scales[3]))}))
        else:
            raise ValueError(f"{path}: op {node.op_type} ({out!r}) is not one the trunk reader knows")
    sub, mul, offset = (consts[n].reshape(-1) for n in _NORM_CONSTANTS)
    scale = np.broadcast_to(mul, (3,)).astype(np.float32)
    shift = (-np.broadcast_to(sub, (3,)) * mul - offset).astype(np.float32)
    return TrunkSpec(tuple(ops), consts, scale, shift)


class _FrozenConv(nn.Module):
    """A Conv node: weights as non-persistent buffers; ONNX pads (top, left, bottom, right) kept."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, attrs: dict) -> None:
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(weight.copy()), persistent=False)
        b = bias if bias is not None else np.zeros(weight.shape[0], np.float32)
        self.register_buffer("bias", torch.from_numpy(b.copy()), persistent=False)
        top, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
        self.symmetric = top == bottom and left == right
        self.padding = (top, left) if self.symmetric else (0, 0)
        self.pad = (left, right, top, bottom)
        self.stride = tuple(attrs.get("strides", (1, 1)))
        self.dilation = tuple(attrs.get("dilations", (1, 1)))
        self.groups = int(attrs.get("group", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:  # TF "SAME" on stride 2: the extra row/column at the end
            x = F.pad(x, self.pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _TunedConv(_FrozenConv):
    """A Conv node that trains at its own scale: ``w = w0 + rms(w0) * delta_weight`` (rms per output
    channel), ``b = b0 + rms(b0) * delta_bias`` (rms of the layer's bias); the deltas start at 0, ``w0`` and
    ``b0`` stay non-persistent buffers (read from the file at every build)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, attrs: dict) -> None:
        super().__init__(weight, bias, attrs)
        w, b = self.weight, self.bias
        w_rms = w.flatten(1).square().mean(1).sqrt().view(-1, *([1] * (w.dim() - 1)))
        b_rms = b.square().mean().sqrt()
        if float(b_rms) == 0.0:  # no bias in the file: move it at the weights' scale
            b_rms = w.square().mean().sqrt()
        self.register_buffer("weight_scale", w_rms, persistent=False)
        self.register_buffer("bias_scale", b_rms.reshape(1), persistent=False)
        self.delta_weight = nn.Parameter(torch.zeros_like(w))
        self.delta_bias = nn.Parameter(torch.zeros_like(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            x = F.pad(x, self.pad)
        w = self.weight + self.weight_scale * self.delta_weight
        b = self.bias + self.bias_scale * self.delta_bias
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)


class OnnxTrunk(nn.Module):
    """Runs a ``TrunkSpec``'s ops in order: the (N,C,H,W) map at ``start`` (or one map per tensor of a tuple
    ``start``) -> the output maps, in order. ``tuned``: its convolutions train (``_TunedConv``)."""

    def __init__(
        self, spec: TrunkSpec, start: str | tuple[str, ...], outputs: tuple[str, ...], *, tuned: bool = False
    ) -> None:
        super().__init__()
        self.starts = (start,) if isinstance(start, str) else tuple(start)
        self.start, self.outputs = self.starts[0], tuple(outputs)
        self.convs = nn.ModuleList()
        conv = _TunedConv if tuned else _FrozenConv
        self._program: list[tuple[str, tuple[str, ...], str, object]] = []
        channels: dict[str, int] = {}
        for op in spec.ops:
            arg: object = None
            if op.kind == "conv":
                weight = spec.constants[op.inputs[1]]
                bias = spec.constants[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] else None
                arg = len(self.convs)
                self.convs.append(conv(weight, bias, op.attrs))
                channels[op.output] = int(weight.shape[0])
                ins = op.inputs[:1]
            else:
                ins = op.inputs
                arg = op.attrs.get("min", 0.0), op.attrs.get("max", 0.0), op.attrs.get("scale")
                channels[op.output] = channels.get(ins[0], 0)
            self._program.append((op.kind, ins, op.output, arg))
        self.out_channels = tuple(channels[o] for o in self.outputs)

    def forward(self, x: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        maps = [x] if isinstance(x, torch.Tensor) else list(x)
        if len(maps) != len(self.starts):
            raise ValueError(f"OnnxTrunk: {len(self.starts)} input maps expected, got {len(maps)}")
        env = dict(zip(self.starts, maps, strict=True))
        for kind, ins, out, arg in self._program:
            a = env[ins[0]]
            if kind == "conv":
                env[out] = self.convs[arg](a)  # type: ignore[index]
            elif kind == "clip":
                lo, hi, _ = arg  # type: ignore[misc]
                env[out] = a.clamp(lo, hi)
            elif kind == "relu":
                env[out] = F.relu(a)
            elif kind == "add":
                env[out] = a + env[ins[1]]
            else:  # resize
                _, _, scale = arg  # type: ignore[misc]
                env[out] = F.interpolate(a, scale_factor=scale, mode="bilinear", align_corners=False)
        return [env[o] for o in self.outputs]


def _thunder_path() -> Path:
    from whmr_core.runtime.pose_models import verified_path  # sha256-checked; imported late (no cycle)

    return verified_path("movenet-thunder")


class MoveNetBackbone(nn.Module):
    """ImageNet-normalised crops (N,3,H,W), H and W multiples of 32 -> [FPN stride 16, 8, 4 maps].

    ``feature_channels`` and ``feature_strides`` describe the maps (coarse to fine); ``multi_scale`` tells
    the network to feed them to ``MultiScalePyramid``. Without ``tune_fpn`` nothing here trains (see the
    module docstring); with it, the FPN (and MoveNet's heads) train through their deltas.

    ``forward(x) == tuned_maps(frozen_maps(x))``: ``frozen_maps`` is what no stage can change (the whole
    backbone's output, or with ``tune_fpn`` the four MobileNetV2 maps the FPN reads), the part a feature
    cache stores; ``tuned_maps`` runs the rest (nothing, or the tuned FPN and heads).
    """

    multi_scale = True

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        keypoint_maps: bool = False,
        tune_fpn: bool = False,
        tune_lr_scale: float = 0.1,
    ) -> None:
        super().__init__()
        from whmr_core.crops import IMAGENET_MEAN, IMAGENET_STD

        self.arch = "movenet-thunder"
        self.keypoint_maps = keypoint_maps
        self.tune_fpn = tune_fpn
        outputs = FPN_OUTPUTS + (KEYPOINT_HEADS if keypoint_maps else ())
        file = str(path if path is not None else _thunder_path())
        spec = read_trunk(file, outputs=outputs)
        if not tune_fpn:
            self.trunk = OnnxTrunk(spec, MOVENET_INPUT, outputs)
            out_channels = self.trunk.out_channels
            self.frozen_channels = tuple(out_channels)
        else:
            frozen_spec = read_trunk(file, outputs=FPN_INPUTS)
            tuned_spec = read_trunk(file, FPN_INPUTS, outputs)
            shared = {o.output for o in frozen_spec.ops} & {o.output for o in tuned_spec.ops}
            if shared:  # the FPN would read MobileNetV2 elsewhere than at FPN_INPUTS
                raise ValueError(f"{file}: the tuned part repeats frozen ops ({sorted(shared)[:3]}, ...)")
            self.frozen = OnnxTrunk(frozen_spec, MOVENET_INPUT, FPN_INPUTS)
            self.tuned = OnnxTrunk(tuned_spec, FPN_INPUTS, outputs, tuned=True)
            self.frozen_channels = tuple(self.frozen.out_channels)
            out_channels = self.tuned.out_channels
            # The trainer gives the tuned part's parameters the stage's learning rate times this.
            self.lr_scale = float(tune_lr_scale)
        # x_movenet = pixel * scale + offset with pixel = (x * std + mean) * 255: one affine per channel.
        std, mean = IMAGENET_STD.astype(np.float32), IMAGENET_MEAN.astype(np.float32)
        a = spec.norm_scale * std * 255.0
        b = spec.norm_scale * mean * 255.0 + spec.norm_offset
        self.register_buffer("input_scale", torch.from_numpy(a).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_offset", torch.from_numpy(b).view(1, 3, 1, 1), persistent=False)
        c16, c8, c4, *heads = out_channels
        self.feature_channels = (c16, c8, c4 + sum(heads))
        self.feature_strides = FPN_STRIDES
        self.out_channels = self.feature_channels[0]
        self.stride = 32  # as ResNet's: Phi_1..Phi_3 lie at strides 16, 8, 4

    def _heads(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self.keypoint_maps:
            return maps
        m16, m8, m4, heatmap_logits, offsets = maps
        return [m16, m8, torch.cat([m4, torch.sigmoid(heatmap_logits), offsets], dim=1)]

    def frozen_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What no stage trains: the backbone's output, or with ``tune_fpn`` the FPN's four inputs."""
        x = x * self.input_scale + self.input_offset
        if not self.tune_fpn:
            return self._heads(self.trunk(x))
        return self.frozen(x)

    def tuned_maps(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """``frozen_maps``' output -> the backbone's output (the identity without ``tune_fpn``)."""
        if not self.tune_fpn:
            return list(maps)
        return self._heads(self.tuned(maps))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.tuned_maps(self.frozen_maps(x))
