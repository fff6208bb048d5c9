"""In-tree backbones: public checkpoint layouts, output shapes, pretrained loading and refusal."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from whmr_core.model.backbones import PretrainedMismatchError, load_pretrained
from whmr_core.model.backbones.resnet import resnet18, resnet50
from whmr_core.model.backbones.vit import VisionTransformer, vit_base_patch16


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet_layouts_match_torchvision():
    r18, r50 = resnet18(), resnet50()
    # torchvision: resnet18 11,689,512 and resnet50 25,557,032 parameters including the 1000-way fc.
    assert _n_params(r18) == 11_689_512 - (512 * 1000 + 1000)
    assert _n_params(r50) == 25_557_032 - (2048 * 1000 + 1000)
    sd18, sd50 = r18.state_dict(), r50.state_dict()
    assert sd18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd18["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd50["layer1.0.downsample.1.running_var"].shape == (256,)
    assert sd50["layer3.5.conv3.weight"].shape == (1024, 256, 1, 1)
    assert sd50["layer4.0.conv2.weight"].shape == (512, 512, 3, 3)
    assert not any(k.startswith("fc.") for k in sd50)


def test_resnet_output_shape():
    with torch.no_grad():
        assert resnet18().eval()(torch.zeros(1, 3, 128, 96)).shape == (1, 512, 4, 3)


@pytest.mark.slow
def test_vitb_layout_and_shape():
    vit = vit_base_patch16((256, 192)).eval()
    sd = vit.state_dict()
    # ViTPose-B backbone: 16x12 patches (+1 slot) and 12 blocks of width 768.
    assert sd["pos_embed"].shape == (1, 193, 768)
    assert sd["patch_embed.proj.weight"].shape == (768, 3, 16, 16)
    assert sd["blocks.11.attn.qkv.weight"].shape == (2304, 768)
    assert sd["blocks.11.mlp.fc2.weight"].shape == (768, 3072)
    assert "last_norm.bias" in sd
    assert 85_000_000 < _n_params(vit) < 87_000_000
    with torch.no_grad():
        assert vit(torch.zeros(1, 3, 256, 192)).shape == (1, 768, 16, 12)


def _tiny_vit() -> VisionTransformer:
    return VisionTransformer(crop_hw=(64, 48), dim=32, depth=2, heads=2)


def test_load_torch_checkpoint_with_prefix_and_head(tmp_path):
    src = resnet18()
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}
    sd["module.fc.weight"] = torch.zeros(1000, 512)
    sd["module.fc.bias"] = torch.zeros(1000)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": sd}, path)
    dst = resnet18()
    report = load_pretrained(dst, path)
    assert set(report.unexpected) == {"fc.weight", "fc.bias"}
    assert report.missing == ()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_load_vitpose_style_safetensors(tmp_path):
    src = _tiny_vit()
    sd = {f"backbone.{k}": v.contiguous() for k, v in src.state_dict().items()}
    sd["keypoint_head.final_layer.weight"] = torch.zeros(17, 32, 1, 1)
    del sd["backbone.last_norm.weight"]
    path = tmp_path / "vitpose.safetensors"
    save_file(sd, str(path))
    dst = _tiny_vit()
    report = load_pretrained(dst, path)
    assert report.missing == ("last_norm.weight",)
    assert report.unexpected == ("keypoint_head.final_layer.weight",)
    assert torch.equal(dst.pos_embed, src.pos_embed)
    assert "missing 1" in str(report)


def test_wrong_architecture_is_refused(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(PretrainedMismatchError, match=r"not a resnet50 checkpoint.*basic-block ResNet"):
        load_pretrained(resnet50(), path)
    vit_path = tmp_path / "vit.pt"
    torch.save(_tiny_vit().state_dict(), vit_path)
    with pytest.raises(PretrainedMismatchError, match=r"not a resnet18 checkpoint.*ViT"):
        load_pretrained(resnet18(), vit_path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file"):
        load_pretrained(resnet18(), tmp_path / "absent.pt")
