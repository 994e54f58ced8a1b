"""Named sweep grids: which models, seeds, data and test-time adaptation a study runs.

A `models` entry is a registry name, or (name, {overrides}) for per-model settings such as pretrained=True;
every override must be a profile setting (wbcbench.core.profiles.SETTINGS) and JSON-serialisable.
"""
from __future__ import annotations

from wbcbench.core.errors import unknown
from wbcbench.core.names import BENCHMARK_DOMAINS

PAPER_MODELS = ["vgg16", "vgg16_bn", "resnet50", "resnet50_fc", "resnet50_freezebn", "resnet50_freezebn_last16",
                "resnet50_gn", "vit_b_16"]
# From scratch, one normalisation layer each; no frozen BN here: frozen at its initial statistics BN is an
# identity layer, so frozen BN is studied only where it means something, on pretrained networks.
CPU_MODELS = ["resnet18_bn", "resnet18_gn", "resnet18_in", "resnet18_ln", "resnet18_nonorm",
              "vit_tiny", ("efficientnet_lite0", {"pretrained": True}),
              ("efficientnet_lite0_freezebn", {"pretrained": True})]

# The pretrained study: the paper's three arms on each EfficientNet-Lite (BN fine-tuned; BN frozen at
# ImageNet statistics; frozen BN with only the last stages trained), and on Lite0 with BN fine-tuned the
# training-time remedies (augment=...). Every run is also tested with AdaBN and TENT (BN arms: frozen BN has
# nothing to adapt) and with test-time stain normalisation.
LITE_ARMS = ["efficientnet_lite{v}", "efficientnet_lite{v}_freezebn", "efficientnet_lite{v}_freezebn_last"]
REMEDIES = ["hed", "colour", "grayscale"]
PRETRAINED_MODELS = ([arm.format(v=v) for v in (0, 1, 2) for arm in LITE_ARMS]
                     + [("efficientnet_lite0", {"augment": a}) for a in REMEDIES])
# The converged pretrained study (book/analysis_plan.md, second addendum): the same three arms per Lite, and on
# Lite0 with BN fine-tuned colour jitter, scale augmentation and both. Lite1 last within each seed: the plan
# drops it from seeds 1-4 if seed 0 projects the grid past 10 hours on the 2-core machine, and seed 0 did
# (the projection is in notebooks/10_pretrained_converged), so Lite1's arms run at seed 0 only.
V2_MODELS = ([arm.format(v=0) for arm in LITE_ARMS]
             + [("efficientnet_lite0", {"augment": a}) for a in ("colour", "scale", "colour+scale")]
             + [arm.format(v=2) for arm in LITE_ARMS]
             + [(arm.format(v=1), {"seeds": [0]}) for arm in LITE_ARMS])
V2_ADAPT = ("adabn", "tent", "scale", "scale+adabn", "macenko_domain", "reinhard_domain")
# The pilot that chose the cpu-pretrained profile's budget, on pbc:val only: each entry spells out all four
# settings it varies, so that its runs keep their names whatever the profile's values are.
PILOT_SETTINGS = [dict(stored_size=110, crop_size=96, train_subset_per_class=200, epochs=8),
                  dict(stored_size=110, crop_size=96, train_subset_per_class=400, epochs=4),
                  dict(stored_size=146, crop_size=128, train_subset_per_class=200, epochs=4),
                  dict(stored_size=73, crop_size=64, train_subset_per_class=200, epochs=8)]

# Every bundled test domain (the data README): the default test list of `wbcbench train` and of sweeps.
BUNDLED_TESTS = ",".join(BENCHMARK_DOMAINS)

GRIDS: dict[str, dict] = {
    # Tsutsui, Su & Wen (ICASSP 2023), Table 1: train on Raabin-WBC Train, test on Raabin TestA/TestB, LISC, BCCD.
    "paper": dict(profile="paper", models=PAPER_MODELS, seeds=list(range(10)), train="raabin:train",
                  test="raabin:testA,raabin:testB,lisc-paper,bccd", adapt=()),
    # The CPU study on the bundled data: normalisation layers under domain shift, with test-time adaptation.
    "cpu-study": dict(profile="cpu", models=CPU_MODELS, seeds=list(range(5)), train="pbc:train",
                      test=BUNDLED_TESTS, adapt=("adabn", "batch_stats", "tent")),
    "cpu-pretrained-pilot": dict(profile="cpu-pretrained", models=[("efficientnet_lite0", ov) for ov in PILOT_SETTINGS],
                                 seeds=[0], train="pbc:train", test="pbc:val", adapt=()),
    "cpu-pretrained": dict(profile="cpu-pretrained", models=PRETRAINED_MODELS, seeds=list(range(5)), train="pbc:train",
                           test=BUNDLED_TESTS, adapt=("adabn", "tent", "macenko", "reinhard")),
    "cpu-pretrained-v2": dict(profile="cpu-pretrained-v2", models=V2_MODELS, seeds=list(range(5)), train="pbc:train",
                              test=BUNDLED_TESTS + ",pbc:val", adapt=V2_ADAPT),
    # The same arms with the paper's recipe (224 px, 100 epochs, the whole training set) for a lent GPU: seed-major,
    # so whatever part of it a lent machine's minutes allow is a complete set of arms at the first seeds.
    "gpu-pretrained": dict(profile="paper", models=[m for m in PRETRAINED_MODELS if isinstance(m, str)],
                           seeds=list(range(5)), train="pbc:train", test=BUNDLED_TESTS, adapt=("adabn", "tent")),
}


def get_grid(name: str) -> dict:
    """Grid `name`, or WbcError listing the known grids."""
    if name not in GRIDS:
        raise unknown("grid", name, GRIDS)
    return GRIDS[name]


def model_names(models) -> list[str]:
    """The model names of a grid's `models` entries (without their per-model overrides)."""
    return [m if isinstance(m, str) else m[0] for m in models]


def entry_seeds(entry, seeds) -> list[int]:
    """The seeds a grid entry runs at: `seeds`, or those of them its own `seeds` key keeps (a grid may run an
    entry at some seeds only; the key is not a training setting and never enters the run's name)."""
    only = None if isinstance(entry, str) else dict(entry[1]).get("seeds")
    return [s for s in seeds if only is None or s in only]


def grid_size(name: str = "cpu-study") -> dict:
    """Models, seeds and number of runs of a named grid."""
    g = get_grid(name)
    models = model_names(g["models"])
    return {"models": models, "seeds": list(g["seeds"]),
            "runs": sum(len(entry_seeds(e, g["seeds"])) for e in g["models"])}
