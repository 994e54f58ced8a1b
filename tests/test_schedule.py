"""The learning-rate schedule against its definition: linear warm-up (step+1)/W over W optimiser steps, then
cosine decay 0.5 (1 + cos(pi (s - W) / (T - W))) to zero at step T; the optimiser's rate follows it step by
step, and the rates recorded in the committed runs' log.csv are exactly these values."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT
from wbcbench.core.profiles import get_profile
from wbcbench.data.sources import DATASETS
from wbcbench.engine.fit import lr_factor, make_optimizer


def test_warm_up_is_linear_and_reaches_the_base_rate():
    assert [lr_factor(s, 100, 10) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lr_factor(9, 100, 10) == 1.0 and lr_factor(10, 100, 10) == 1.0


@pytest.mark.parametrize("step, want", [
    (10, 1.0),                                     # end of warm-up: cos(0)
    (40, 0.5 * (1 + math.cos(math.pi / 3))),       # a third of the decay: 0.75
    (55, 0.5),                                     # half-way
    (85, 0.5 * (1 + math.cos(math.pi * 75 / 90))),
    (100, 0.0), (250, 0.0),                        # the end, and past it
])
def test_cosine_decay_at_known_steps(step, want):
    assert lr_factor(step, 100, 10) == pytest.approx(want, abs=1e-15)


def test_no_warm_up_starts_at_the_base_rate_and_decays_monotonically():
    f = [lr_factor(s, 20, 0) for s in range(21)]
    assert f[0] == 1.0 and f[-1] == pytest.approx(0.0, abs=1e-15)
    assert all(a >= b for a, b in zip(f, f[1:]))


def test_a_warm_up_longer_than_the_run_is_refused():
    with pytest.raises(ValueError, match="warm-up of 30 steps"):
        lr_factor(0, 20, 30)
    with pytest.raises(ValueError):
        make_optimizer(nn.Linear(2, 2), dict(epochs=2, warmup_epochs=3, lr=0.1, weight_decay=0.0), 5)
    with pytest.raises(WbcError, match="warmup_epochs"):
        get_profile("smoke", epochs=2, warmup_epochs=3)


def test_the_optimiser_rate_follows_the_schedule_every_step():
    """make_optimizer is what training uses: before optimiser step s the rate is lr * lr_factor(s)."""
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    hp = dict(epochs=3, warmup_epochs=1, lr=0.01, weight_decay=0.0)
    opt, sched = make_optimizer(net, hp, steps_per_epoch=4)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        net(torch.randn(8, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    assert seen == pytest.approx([0.01 * lr_factor(s, 12, 4) for s in range(12)], rel=1e-12)
    assert seen[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)  # after the last step


def test_committed_logs_record_these_rates():
    """Each committed run logged the rate after its epoch's last step: lr * lr_factor(e * steps per epoch)."""
    logs = sorted((REPO_ROOT / "results").glob("*/*/log.csv"))
    # the pilot (legacy records) and the rerun grid both count; the grid grows as the sweep resumes
    assert {p.parent.parent.name for p in logs} >= {"cpu", "cpu-pilot"} and len(logs) >= 4, logs
    for p in logs:
        cfg = json.loads((p.parent / "config.json").read_text())
        hp = cfg["hparams"]
        # PBC has every class >= the subset; without one, the whole training split (its registered size)
        n = 5 * hp["train_subset_per_class"] if hp.get("train_subset_per_class") else \
            DATASETS[cfg["train"]].expected_total
        per_epoch = n // hp["batch_size"]
        total, warm = hp["epochs"] * per_epoch, hp["warmup_epochs"] * per_epoch
        log = pd.read_csv(p)
        want = [hp["lr"] * lr_factor(e * per_epoch, total, warm) for e in log["epoch"]]
        assert np.allclose(log["lr"], want, rtol=1e-12, atol=1e-18), p
