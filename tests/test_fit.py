"""The public training loop, `wbcbench.engine.fit.fit`, on generated images (no data needed, CPU, seconds):
a network outside the model registry learns and resumes bit for bit; the mixup branch feeds the network the
documented mix and minimises the lam-weighted pair of cross-entropies; the AMP/gradient-scaler choice and
the scaler's branch of the loop."""
from __future__ import annotations

import warnings
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch import nn

from wbcbench.core.errors import WbcError
from wbcbench.core.profiles import get_profile
from wbcbench.data.loader import epoch_rng
from wbcbench.engine import fit as fit_module
from wbcbench.engine.evaluate import autocast_for
from wbcbench.engine.fit import CHECKPOINT, fit, read_state, training_loader

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 60, 220], [230, 210, 40], [160, 40, 200]], np.uint8)
# 16 px images, 12 px crops, batches of 16: 10 steps per epoch on 5 x 32 images.
HP = get_profile("smoke", stored_size=16, crop_size=12, batch_size=16, lr=1e-2, warmup_epochs=1, epochs=2)


def two_colour_images(per_class: int, size: int = 16, seed: int = 0):
    """(uint8 NHWC images, labels) of 5 classes: grey with its top or bottom half (at random) in the class's
    colour, plus pixel noise. Any crop holds both colours."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(COLOURS)), per_class)
    images = np.empty((len(labels), size, size, 3), np.uint8)
    for i, c in enumerate(labels):
        img = np.full((size, size, 3), 128, np.int16)
        img[slice(0, size // 2) if rng.random() < 0.5 else slice(size // 2, size)] = COLOURS[c]
        images[i] = np.clip(img + rng.integers(-30, 31, img.shape), 0, 255)
    return images, labels


def tiny_cnn(seed: int = 0) -> nn.Module:
    """A network the registry does not know: no `wbc_config`, so fit must be given mean and std."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, len(COLOURS)))


def weight_bytes(net: nn.Module) -> dict[str, bytes]:
    return {k: v.detach().cpu().numpy().tobytes() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def data():
    return two_colour_images(32)


class Interrupted(Exception):
    """Stands in for a kill between epochs."""


def interrupted_after_first_epoch(net, images, labels, hp, run_dir):
    """fit() stopped as epoch 2 begins, after epoch 1's checkpoint is written."""
    loader = training_loader(images, labels, hp, mean=MEAN, std=STD)
    set_epoch = loader.set_epoch

    def stop_at_second(epoch):
        if epoch == 1:
            raise Interrupted
        set_epoch(epoch)
    loader.set_epoch = stop_at_second
    with pytest.raises(Interrupted):
        fit(net, images, labels, hp, mean=MEAN, std=STD, run_dir=run_dir, loader=loader)
    assert read_state(run_dir / CHECKPOINT, "cpu", ("epoch",))["epoch"] == 1


def without_timing(log):
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in log]


# ------------------------------------------------------------------------------- a model outside the registry
def test_a_model_outside_the_registry_learns(data):
    images, labels = data
    net = tiny_cnn()
    log = fit(net, images, labels, dict(HP, epochs=4), mean=MEAN, std=STD)
    acc = [row["train_accuracy"] for row in log]
    assert len(log) == 4 and acc[-1] >= 0.9 and acc[-1] >= acc[0] + 0.3, acc
    assert log[-1]["train_loss"] < log[0]["train_loss"]


def test_fit_needs_the_input_normalisation_of_a_model_outside_the_registry(data):
    images, labels = data
    with pytest.raises(WbcError, match="mean and std"):
        fit(tiny_cnn(), images, labels, HP)


def test_resuming_after_the_first_epoch_gives_the_same_weights_byte_for_byte(data, tmp_path):
    images, labels = data
    whole = tiny_cnn()
    whole_log = fit(whole, images, labels, HP, mean=MEAN, std=STD)
    interrupted_after_first_epoch(tiny_cnn(), images, labels, HP, tmp_path)
    resumed = tiny_cnn(seed=1)  # other initial weights: everything must come from the checkpoint
    log = fit(resumed, images, labels, HP, mean=MEAN, std=STD, run_dir=tmp_path, resume=True)
    assert weight_bytes(resumed) == weight_bytes(whole)
    assert without_timing(log) == without_timing(whole_log)


# ----------------------------------------------------------------------------------------------------- mixup
class Recorder(nn.Module):
    """`inner`, remembering each input it was fed and the logits it returned."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x):
        out = self.inner(x)
        self.calls.append((x.detach().clone(), out.detach().clone()))
        return out


def smoothed_ce(logits: torch.Tensor, target: torch.Tensor, eps: float) -> float:
    """Cross-entropy with label smoothing, by hand: (1-eps) * -log p[target] + eps * mean over classes of
    -log p, averaged over the batch."""
    nll = -torch.log_softmax(logits.double(), 1)
    return float(((1 - eps) * nll.gather(1, target[:, None]).squeeze(1) + eps * nll.mean(1)).mean())


def test_mixup_feeds_the_documented_mix_and_weighs_both_losses_by_lam():
    """One batch, one step: the network sees lam*x + (1-lam)*x[perm] with lam ~ Beta(alpha, alpha) and perm
    drawn from the epoch's mixup generator, and the logged loss is lam*CE(y) + (1-lam)*CE(y[perm])."""
    images, labels = two_colour_images(4)
    alpha, eps, seed = 0.4, 0.1, 3
    hp = dict(HP, epochs=1, batch_size=len(labels), mixup_alpha=alpha, label_smoothing=eps)
    torch.manual_seed(0)
    net = Recorder(nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, len(COLOURS))))
    (row,) = fit(net, images, labels, hp, seed=seed, mean=MEAN, std=STD)

    plain = training_loader(images, labels, hp, seed=seed, mean=MEAN, std=STD)
    plain.set_epoch(0)
    (batch,) = list(plain)
    rng = epoch_rng(seed, 10**6)  # fit's mixup stream of epoch 0
    lam, perm = float(rng.beta(alpha, alpha)), torch.from_numpy(rng.permutation(len(labels)))
    assert 0.05 < lam < 0.95 and not torch.equal(perm, torch.arange(len(labels)))  # a real mix

    ((fed, logits),) = net.calls
    assert torch.allclose(fed, lam * batch.x + (1 - lam) * batch.x[perm], atol=1e-6)
    want = lam * smoothed_ce(logits, batch.y, eps) + (1 - lam) * smoothed_ce(logits, batch.y[perm], eps)
    assert row["train_loss"] == pytest.approx(want, rel=1e-5)
    assert abs(want - smoothed_ce(logits, batch.y, eps)) > 1e-3  # the mix is not the plain loss


# ---------------------------------------------------------------------------------------- AMP and the scaler
def test_no_autocast_and_no_scaler_off_cuda():
    for device in ("cpu", "mps"):
        autocast, scaler = autocast_for(torch.device(device))
        assert autocast is nullcontext and scaler is None
        with autocast():
            assert not torch.is_autocast_enabled("cpu")
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("bf16, dtype, scaled", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_autocasts_to_bf16_where_supported_else_fp16_with_a_gradient_scaler(bf16, dtype, scaled,
                                                                                 monkeypatch):
    """Checked without a GPU: the choice only asks torch.cuda.is_bf16_supported(). fp16 needs a GradScaler
    (its gradients underflow); bf16 has float32's range and needs none."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available. Disabling" on this machine
        autocast, scaler = autocast_for(torch.device("cuda", 0))
        context = autocast()
    assert isinstance(context, torch.autocast) and context.device == "cuda" and context.fast_dtype == dtype
    assert isinstance(scaler, torch.amp.GradScaler) if scaled else scaler is None


def with_scaler(monkeypatch, scaler):
    monkeypatch.setattr(fit_module, "autocast_for", lambda device: (nullcontext, scaler))


def test_the_scaler_branch_trains_as_the_plain_one_and_resumes_with_its_state(data, tmp_path, monkeypatch):
    """fit's GradScaler branch, on the CPU: a power-of-two loss scale, unscaled before each step, gives the
    plain branch's weights bit for bit; the scaler's state (its scale grows every 3 steps here) goes into
    each checkpoint, and a resumed run continues from it."""
    images, labels = data
    plain = tiny_cnn()
    fit(plain, images, labels, HP, mean=MEAN, std=STD)

    def scaler():
        return torch.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=3)
    whole_scaler = scaler()
    with_scaler(monkeypatch, whole_scaler)
    whole = tiny_cnn()
    fit(whole, images, labels, HP, mean=MEAN, std=STD)
    assert weight_bytes(whole) == weight_bytes(plain)
    assert whole_scaler.get_scale() == 2.0 ** (8 + 20 // 3)  # 20 steps, no overflow

    with_scaler(monkeypatch, scaler())
    interrupted_after_first_epoch(tiny_cnn(), images, labels, HP, tmp_path)
    saved = read_state(tmp_path / CHECKPOINT, "cpu", ("scaler",))["scaler"]
    assert saved["scale"] == 2.0 ** (8 + 10 // 3)
    resumed_scaler = scaler()
    with_scaler(monkeypatch, resumed_scaler)
    resumed = tiny_cnn(seed=1)
    fit(resumed, images, labels, HP, mean=MEAN, std=STD, run_dir=tmp_path, resume=True)
    assert weight_bytes(resumed) == weight_bytes(whole)
    assert resumed_scaler.state_dict() == whole_scaler.state_dict()
