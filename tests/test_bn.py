"""bn.py against the definitions it implements, on small networks where the right answer can be computed
directly: which layers are adaptable, AdaBN's statistics, test-time batch statistics and the per-layer
activation statistics."""
import copy

import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from wbcbench.adapt import bn
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


# ------------------------------------------------------------------------------- exact AdaBN (issue 10)
def one_pass_reference(net, x):
    """The definition: one forward pass in train mode over all images as one batch, momentum 1."""
    ref = copy.deepcopy(net)
    for _, m in bn.bn_layers(ref):
        m.reset_running_stats()
        m.momentum = 1.0
        m.train()
    with torch.no_grad():
        ref(x)
    return ref.eval()


def assert_same_statistics(a, b, rtol=1e-5, atol=1e-6):
    for (name, la), (_, lb) in zip(bn.bn_layers(a), bn.bn_layers(b)):
        assert torch.allclose(la.running_mean, lb.running_mean, rtol=rtol, atol=atol), name
        assert torch.allclose(la.running_var, lb.running_var, rtol=rtol, atol=atol), name


def two_classes(n=24):
    """Images of two very different kinds, the first half one kind: a class-sorted test set."""
    return torch.cat([images(n // 2, seed=2, shift=3.0), images(n // 2, seed=3, shift=-3.0)])


@pytest.mark.parametrize("sizes", [(24,), (12, 12), (5, 8, 11), (1, 23), (3,) * 8])
def test_adabn_matches_the_one_pass_reference_for_any_batching(sizes):
    net, x = small_net(), two_classes()
    want = one_pass_reference(net, x)
    got = bn.adabn(net, list(torch.split(x, list(sizes))))
    assert_same_statistics(got, want)
    with torch.no_grad():
        assert torch.allclose(got(x), want(x), atol=1e-5)


def test_adabn_does_not_depend_on_order_or_class_composition_of_the_batches():
    """Class-sorted batches (each batch one kind of image) and shuffled ones give the same statistics and
    the same predictions. Before issue 10 (momentum=None: the mean of per-batch variances) the sorted
    batches lost the variance between the two kinds."""
    net, x = small_net(), two_classes()
    sorted_batches = list(torch.split(x, 12))
    shuffled = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))]
    a, b = bn.adabn(net, sorted_batches), bn.adabn(net, list(torch.split(shuffled, 12)))
    assert_same_statistics(a, b, rtol=1e-6)
    with torch.no_grad():
        pa, pb = a(x), b(x)
    assert torch.equal(pa.argmax(1), pb.argmax(1)) and torch.allclose(pa, pb, atol=1e-6)
    # the first layer's input does not depend on adaptation: its variance is that of all images, which holds
    # the variance between the two kinds that the mean of the per-batch variances leaves out
    first, inp = bn.bn_layers(a)[0][1], bn_inputs(net, x)[0]
    assert torch.allclose(first.running_var, inp.var((0, 2, 3)), rtol=1e-5)
    per_batch = torch.stack([bn_inputs(net, s)[0].var((0, 2, 3)) for s in sorted_batches]).mean(0)
    assert (first.running_var > per_batch * 1.02).all()


def test_adabn_reads_a_generator_of_batches_and_restores_momentum():
    net, x = small_net(), two_classes()
    got = bn.adabn(net, (b for b in torch.split(x, 7)))
    assert_same_statistics(got, one_pass_reference(net, x))
    assert all(m.momentum == 0.1 for _, m in bn.bn_layers(got))


# ---------------------------------------------------------------------------------------- TENT (issue 10)
def entropy(net, x):
    with torch.no_grad():
        return float(bn.softmax_entropy(net(x)).mean())


def test_tent_learns_only_the_bn_affine_parameters():
    net, x = small_net(), two_classes()
    before = copy.deepcopy(net.state_dict())
    t = bn.Tent(net)
    for chunk in torch.split(x, 8):
        t.step(chunk)
    after = t.model.state_dict()
    affine = {f"{name}.{p}" for name, _ in bn.bn_layers(net) for p in ("weight", "bias")}
    for k, v in before.items():
        if k in affine:
            assert not torch.equal(after[k], v), k
        elif not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(after[k], v), k
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the original is untouched
    assert [p.shape for p in t.params] == [before[k].shape for k in sorted(affine, key=list(before).index)]


def test_tent_step_lowers_the_entropy_of_its_batch():
    net, x = small_net(), two_classes()
    t = bn.Tent(net)
    h0 = entropy(t.model, x)
    t.step(x)
    assert entropy(t.model, x) < h0


def test_tent_predicts_each_batch_before_its_own_update():
    """The online setting of the paper's code: a batch's predictions come from the forward pass whose
    entropy is then minimised. The first batch is thus predicted by the network with batch statistics and
    its trained affine parameters; the second already by the adapted one."""
    net, x = small_net(), two_classes()
    t = bn.Tent(net)
    with torch.no_grad():
        first_want = bn.test_time_bn(net)(x[:8])
    assert torch.allclose(t.step(x[:8]), first_want, atol=1e-6)
    with torch.no_grad():
        second_before = bn.test_time_bn(net)(x[8:16])
    assert not torch.allclose(t.step(x[8:16]), second_before, atol=1e-6)


def test_tent_is_deterministic_and_keeps_dropout_off():
    net, x = small_net(), two_classes()
    runs = []
    for _ in range(2):
        torch.manual_seed(len(runs))  # another global RNG state: dropout, were it on, would differ
        t = bn.Tent(net)
        runs.append(torch.cat([t.step(c) for c in torch.split(x, 6)]))
    assert torch.equal(runs[0], runs[1])


def test_tent_refuses_a_network_without_bn():
    from wbcbench.core.errors import WbcError
    torch.manual_seed(0)
    with pytest.raises(WbcError, match="TENT adapts BatchNorm"):
        bn.Tent(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4)))
    with pytest.raises(WbcError, match="TENT adapts BatchNorm"):
        bn.Tent(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False)))
    assert bn.tent_layers(create_model("resnet18_gn", pretrained=False)) == []
