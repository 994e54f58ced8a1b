"""Model registry: every name builds and trains, the paper's freezing recipes hold, weights are really loaded,
and user mistakes (no internet, wrong checkpoint, typo) end in one clear WbcError."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from wbcbench import models
from wbcbench.errors import WbcError
from wbcbench.models import MODELS, create_model, list_models

PAPER = ["vgg16", "vgg16_bn", "resnet50", "resnet50_fc", "resnet50_freezebn", "resnet50_freezebn_last16",
         "resnet50_gn", "resnet50_gn_mixup", "vit_b_16"]
CPU_STUDY = ["resnet18_bn", "resnet18_frozenbn", "resnet18_gn", "resnet18_in", "resnet18_ln", "resnet18_nonorm",
             "vit_tiny", "efficientnet_lite0", "efficientnet_lite0_freezebn", "resnet50_groupnorm", "resnet18"]
# 224-only or size-dependent models get their smallest sensible input: ViTs a matching size, InstanceNorm
# needs > 1x1 maps at the last stage (ResNet-18 at 32 px ends at 1x1), so the ResNet-18 family runs at 64 px.
SIZE_KW = {"vit_b_16": dict(image_size=32), "vit_tiny": dict(img_size=32)}
# names that are the same network as another one (checked to be identical instead of trained again)
TWINS = {"resnet50_gn_mixup": "resnet50_gn", "resnet18": "resnet18_bn"}


def _size(name):
    return 64 if name.startswith("resnet18") else 32


def _frozen_state(model):
    """Buffers of every frozen BN (torchvision's and timm's FrozenBatchNormAct2d)."""
    return {f"{n}.{b}": t.clone() for n, m in model.named_modules() if "Frozen" in type(m).__name__
            for b, t in m.named_buffers(recurse=False)}


def test_registry_holds_every_paper_and_study_name():
    assert set(PAPER + CPU_STUDY) == set(list_models())
    assert list_models() == list(MODELS)


@pytest.mark.parametrize("name", [n for n in PAPER + CPU_STUDY if n not in TWINS])
def test_builds_and_trains_one_step(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=5, **SIZE_KW.get(name, {}))
    cfg = m.wbc_config
    assert cfg["name"] == name and len(cfg["mean"]) == 3 and len(cfg["std"]) == 3
    assert {"pretrained", "kwargs", "train_overrides"} <= set(cfg)
    frozen = _frozen_state(m)
    if "freezebn" in name or name == "resnet18_frozenbn":
        assert frozen and not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())
    m.train()
    trainable = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    before = {n: p.detach().clone() for n, p in trainable}
    opt = torch.optim.SGD([p for _, p in trainable], lr=0.1)  # AdamW would double the memory of vgg16
    x, y = torch.randn(2, 3, _size(name), _size(name)), torch.tensor([0, 4])
    out = m(x)
    assert out.shape == (2, 5)
    loss = nn.functional.cross_entropy(out, y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = [n for n, p in trainable if not torch.equal(before[n], p.detach())]
    assert changed, f"{name}: no parameter moved after one step"
    m.train()  # frozen BN must survive train() and a step unchanged
    for k, v in _frozen_state(m).items():
        assert torch.equal(v, frozen[k]), f"{name}: frozen BN buffer {k} changed"


@pytest.mark.parametrize("name", TWINS)
def test_twin_names_build_the_same_network(name):
    a, b = create_model(name).state_dict(), create_model(TWINS[name]).state_dict()
    assert [(k, v.shape) for k, v in a.items()] == [(k, v.shape) for k, v in b.items()]


def test_freezebn_last16_trains_exactly_the_reference_layers():
    m = create_model("resnet50_freezebn_last16")
    convs = [n for n, x in m.named_modules() if isinstance(x, nn.Conv2d) and x.weight.requires_grad]
    assert len(convs) == 16
    # the reference code's set: the last 7 top-level blocks, layer3[4], layer3[5], layer4[0..2]
    assert {c.rsplit(".", 1)[0].split(".conv")[0].split(".downsample")[0] for c in convs} == \
        {"layer3.4", "layer3.5", "layer4.0", "layer4.1", "layer4.2"}
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {c + ".weight" for c in convs} | {"fc.weight", "fc.bias"}
    assert sum(isinstance(x, FrozenBatchNorm2d) for x in m.modules()) == 53


def test_resnet50_fc_has_vgg_style_head():
    head = create_model("resnet50_fc").fc
    kinds = [type(x).__name__ for x in head]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features, head[6].out_features) == \
        (2048, 2048, 2048, 5)


def test_resnet18_norm_variants_are_what_they_say():
    gn = create_model("resnet18_gn")
    assert all(x.num_groups == 32 for x in gn.modules() if isinstance(x, nn.GroupNorm))
    ln = create_model("resnet18_ln")
    assert {x.num_groups for x in ln.modules() if isinstance(x, nn.GroupNorm)} == {1}
    inn = [x for x in create_model("resnet18_in").modules() if isinstance(x, nn.InstanceNorm2d)]
    assert inn and all(x.affine and not x.track_running_stats for x in inn)
    fb = [x for x in create_model("resnet18_frozenbn").modules() if isinstance(x, FrozenBatchNorm2d)]
    assert len(fb) == 20 and all(torch.all(x.running_mean == 0) and torch.all(x.running_var == 1) for x in fb)
    none = create_model("resnet18_nonorm")
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
                  FrozenBatchNorm2d)
    assert not any(isinstance(x, norm_types) for x in none.modules())
    assert create_model("resnet18", norm="gn").wbc_config["kwargs"]["norm"] == "gn"
    assert len(models._gn(16).weight) == 16 and models._gn(16).num_groups == 16  # fewer groups below 32 ch
    with pytest.raises(WbcError, match="did you mean"):
        create_model("resnet18", norm="gnn")


def test_nonorm_resnet_starts_as_identity_blocks_and_learns():
    torch.manual_seed(0)
    m = create_model("resnet18_nonorm")
    blocks = [b for b in m.modules() if type(b).__name__ == "BasicBlock"]
    assert len(blocks) == 8 and all(torch.all(b.conv2.weight == 0) for b in blocks)
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 5
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and min(losses) < losses[0] * 0.8, losses


def test_wbc_config_records_normalisation_and_training_flags():
    assert create_model("resnet18_bn").wbc_config["mean"] == models.IMAGENET_MEAN
    assert create_model("efficientnet_lite0").wbc_config["std"] == (0.5, 0.5, 0.5)
    assert MODELS["resnet50_gn_mixup"].train_overrides == {"mixup_alpha": 1.0}  # reference: --mixup 1
    assert MODELS["resnet50_gn"].train_overrides == {}
    m = create_model("vit_tiny", img_size=48)
    assert m.wbc_config["kwargs"] == {"img_size": 48} and m(torch.randn(1, 3, 48, 48)).shape == (1, 5)


def test_efficientnet_lite0_holds_the_package_imagenet_weights():
    pkg = models.efficientnet_lite0_package_state_dict()
    m = create_model("efficientnet_lite0")
    own = m.state_dict()
    assert len(own) == len(pkg)
    for (kp, vp), (km, vm) in zip(pkg.items(), own.items()):
        if km.startswith("classifier"):
            assert vm.shape[0] == 5
            continue
        assert torch.equal(vp, vm), f"{km} != package {kp}"
    assert all(isinstance(x, nn.BatchNorm2d) for x in m.modules() if "BatchNorm" in type(x).__name__)
    frozen = create_model("efficientnet_lite0_freezebn")
    assert torch.equal(frozen.bn1.running_var, pkg["_bn0.running_var"])
    assert torch.equal(frozen.bn2.weight, pkg["_bn1.weight"])
    assert frozen.bn1.eps == pytest.approx(1e-3)  # TF BN epsilon kept
    scratch = create_model("efficientnet_lite0", pretrained=False)
    assert not torch.equal(scratch.conv_stem.weight, m.conv_stem.weight)


def test_efficientnet_lite0_recognises_real_cells_as_imagenet_things(data_root):
    """With the ImageNet head kept, blood-smear crops look like jellyfish / Petri dishes / bubbles to a
    correctly loaded network; a wrongly mapped or random one is near-uniform over 1000 classes."""
    from PIL import Image
    files = sorted((data_root / "pbc" / "Lymphocyte").glob("*.jpg"))[:4] + \
        sorted((data_root / "pbc" / "Neutrophil").glob("*.jpg"))[:4]
    assert files
    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((224, 224))))
                     .permute(2, 0, 1).float() / 255 for f in files])
    x = (x - 0.5) / 0.5
    with torch.no_grad():
        p = create_model("efficientnet_lite0", num_classes=1000).eval()(x).softmax(1)
        r = create_model("efficientnet_lite0", num_classes=1000, pretrained=False).eval()(x).softmax(1)
    top5 = set(p.mean(0).topk(5).indices.tolist())
    assert top5 & {107, 712, 971}, top5  # jellyfish, Petri dish, bubble
    assert p.max(1).values.mean() > 0.1 > r.max(1).values.mean()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No internet and empty weight caches, whatever machine runs the tests (no real download on Colab)."""
    def no_dns(*a, **k):
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.mark.parametrize("name,source", [("resnet50", "ResNet50_Weights"), ("resnet50_gn", "resnetv2_50d_gn"),
                                         ("vit_b_16", "ViT_B_16")])
def test_pretrained_without_internet_fails_fast_and_says_what_to_do(offline, name, source):
    t = time.time()
    with pytest.raises(WbcError) as e:
        create_model(name, pretrained=True)
    assert time.time() - t < 10
    msg = str(e.value)
    assert source in msg and "weights=" in msg and name in msg


def test_pretrained_refused_where_no_weights_exist():
    for name in ("vit_tiny", "resnet50_groupnorm", "resnet18_gn"):
        with pytest.raises(WbcError):
            create_model(name, pretrained=True)


def test_unknown_names_and_options_suggest_the_right_one():
    with pytest.raises(WbcError, match=r"did you mean 'resnet50'"):
        create_model("resnet5")
    with pytest.raises(WbcError, match="did you mean 'img_size'"):
        create_model("vit_tiny", img_sze=32)


def test_weights_file_loads_backbone_and_rejects_other_models(tmp_path):
    torch.manual_seed(0)
    src = create_model("resnet18_bn")
    path = tmp_path / "r18.pth"
    torch.save({"model": src.state_dict(), "epoch": 3}, path)  # trainer-style checkpoint
    same = create_model("resnet18_bn", weights=path)
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in src.state_dict().items())
    other_head = create_model("resnet18_bn", num_classes=3, weights=path)
    assert torch.equal(other_head.conv1.weight, src.conv1.weight) and other_head.fc.out_features == 3
    frozen = create_model("resnet18_frozenbn", weights=path)  # BN stats carried into the frozen BN
    assert torch.equal(frozen.bn1.running_var, src.bn1.running_var)
    with pytest.raises(WbcError, match="does not fit model 'vit_tiny'.*missing.*unexpected"):
        create_model("vit_tiny", weights=path)
    with pytest.raises(WbcError, match="does not fit model 'resnet18_gn'.*unexpected.*running_mean"):
        create_model("resnet18_gn", weights=path)
    with pytest.raises(WbcError, match="does not exist"):
        create_model("resnet18_bn", weights=tmp_path / "nope.pth")


def test_describe_models_table():
    df = models.describe_models()
    assert list(df["name"]) == list_models()
    assert {"name", "family", "normalisation", "params (M)", "pretrained source", "paper name"} <= set(df)
    p = df.set_index("name")["params (M)"]
    assert p["resnet50"] == pytest.approx(23.5, abs=0.1) and p["vgg16"] == pytest.approx(134.3, abs=0.1)
    assert p["vit_tiny"] < 3 < p["efficientnet_lite0"] < 4
    t = df.set_index("name")["trainable (M)"]
    assert t["resnet50_freezebn_last16"] < t["resnet50_freezebn"]
