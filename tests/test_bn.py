"""bn.py against the definitions it implements, on small networks where the right answer can be computed
directly: which layers are adaptable, AdaBN's statistics, test-time batch statistics and the per-layer
activation statistics."""
import copy

import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from wbcbench import bn
from wbcbench.models import create_model


def small_net(seed=0) -> nn.Module:
    """conv -> BN -> ReLU -> dropout -> conv -> BN -> pool -> linear: two BN layers whose inputs depend on
    each other, and a dropout that must stay off while statistics are collected."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(6, 5))
    with torch.no_grad():  # stored statistics far from any batch's, so a missed update shows
        for m in net:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(9.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.eval()


def images(n=24, seed=1, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g) * 2 + shift


def bn_inputs(net, x) -> list[torch.Tensor]:
    """The input of every BN layer when `net` runs on `x` as it is (a forward pre-hook)."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0].detach().clone()))
             for _, m in bn.bn_layers(net)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_only_bn_layers_with_running_statistics_are_adaptable():
    net = nn.Sequential(nn.BatchNorm2d(3), nn.BatchNorm1d(3), nn.BatchNorm2d(3, track_running_stats=False),
                        nn.GroupNorm(1, 3), FrozenBatchNorm2d(3), nn.LayerNorm(3), nn.InstanceNorm2d(3))
    assert [name for name, _ in bn.bn_layers(net)] == ["0", "1"]
    assert bn.has_adaptable_bn(net)
    assert not bn.has_adaptable_bn(nn.Sequential(nn.GroupNorm(1, 3), FrozenBatchNorm2d(3)))


@pytest.mark.parametrize("name, adaptable", [("resnet18_bn", True), ("resnet18_gn", False), ("resnet18_ln", False),
                                             ("resnet18_nonorm", False), ("efficientnet_lite0_freezebn", False)])
def test_registry_models(name, adaptable):
    assert bn.has_adaptable_bn(create_model(name, pretrained=False)) is adaptable


def test_adabn_on_one_batch_is_that_batchs_train_mode_statistics():
    """With one batch, AdaBN's statistics are those a train-mode forward pass with momentum 1 stores:
    mean and unbiased variance of each layer's input, layer k's input computed with layers < k adapted."""
    net, x = small_net(), images(shift=1.0)
    adapted = bn.adabn(net, [x])
    ref = copy.deepcopy(net)
    for _, m in bn.bn_layers(ref):
        m.reset_running_stats()
        m.momentum = 1.0
        m.train()
    inputs = bn_inputs(ref, x)  # dropout stays in eval mode: only the BN layers are in train mode
    for (_, a), (_, r), inp in zip(bn.bn_layers(adapted), bn.bn_layers(ref), inputs):
        assert torch.allclose(a.running_mean, r.running_mean, atol=1e-6)
        assert torch.allclose(a.running_var, r.running_var, atol=1e-6)
        # that is, directly: mean and unbiased variance of the inputs seen in that pass (where each layer
        # normalised with the batch's biased variance, as train mode does)
        assert torch.allclose(a.running_mean, inp.mean((0, 2, 3)), atol=1e-5)
        assert torch.allclose(a.running_var, inp.var((0, 2, 3), unbiased=True), atol=1e-5)


def test_adabn_returns_an_eval_mode_copy_and_leaves_the_original_alone():
    net, x = small_net(), images()
    before = copy.deepcopy(net.state_dict())
    adapted = bn.adabn(net, [x[:12], x[12:]])
    assert adapted is not net and not adapted.training and not any(m.training for m in adapted.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not torch.allclose(bn.bn_layers(adapted)[0][1].running_mean, before["1.running_mean"])
    # dropout was off while adapting: the same batches give the same statistics every time
    again = bn.adabn(net, [x[:12], x[12:]])
    for (_, a), (_, b) in zip(bn.bn_layers(adapted), bn.bn_layers(again)):
        assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
    # weights and BN affine parameters are not touched
    sd = adapted.state_dict()
    for k in before:
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(sd[k], before[k]), k


def test_adabn_of_a_network_without_bn_changes_nothing():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(), nn.LazyLinear(5))
    x = images(4)
    with torch.no_grad():
        want = net.eval()(x)
        assert torch.equal(bn.adabn(net, [x])(x), want)


def test_test_time_bn_normalises_each_batch_with_its_own_statistics():
    """Every BN layer uses the current batch's mean and biased variance (what train mode normalises with),
    not the stored statistics, also in eval mode; the original keeps its statistics."""
    torch.manual_seed(0)
    layer = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        layer.running_mean.fill_(5.0)
        layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        layer.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))
    x = images(10)
    tbn = bn.test_time_bn(layer)
    assert not tbn.training and tbn.running_mean is None and tbn.running_var is None
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    want = (x - mean) / torch.sqrt(var + layer.eps) * layer.weight.view(1, 3, 1, 1) + layer.bias.view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(tbn(x), want, atol=1e-5)
    assert torch.equal(layer.running_mean, torch.full((3,), 5.0))


def test_test_time_bn_predictions_depend_on_the_batch():
    net = bn.test_time_bn(small_net())
    x = images(6)
    with torch.no_grad():
        a = net(torch.stack([x[0], x[1], x[2]]))[0]
        b = net(torch.stack([x[0], x[3] + 4, x[4]]))[0]
        c = net(torch.stack([x[0], x[1], x[2]]))[0]
    assert not torch.allclose(a, b) and torch.equal(a, c)


def test_activation_stats_are_the_pooled_statistics_of_each_bn_input():
    """Over batches of unequal size: the mean and biased variance of every BN layer's input over all
    images together, beside the layer's stored statistics; the model is not changed."""
    net = small_net()
    x = images(20, shift=-1.0)
    before = copy.deepcopy(net.state_dict())
    stats = bn.activation_stats(net, [x[:7], x[7:]])
    assert list(stats) == [name for name, _ in bn.bn_layers(net)]
    for inp, (name, m) in zip(bn_inputs(net, x), bn.bn_layers(net)):
        s = stats[name]
        assert torch.allclose(s["mean"], inp.mean((0, 2, 3)), atol=1e-5)
        assert torch.allclose(s["var"], inp.var((0, 2, 3), unbiased=False), atol=1e-4)
        assert torch.equal(s["running_mean"], m.running_mean) and torch.equal(s["running_var"], m.running_var)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
