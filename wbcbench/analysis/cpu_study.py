"""The CPU study's claims (notebooks/06_cpu_study), tested by the analysis plan's verdict engine
(wbcbench.analysis.verdict): the from-scratch ResNet-18 normalisation variants, a ViT and EfficientNet-Lite0 of
the `cpu-study` grid. The notebook, the book's intro and results chapters and the README quote one computed
table."""
from __future__ import annotations

import pandas as pd

from wbcbench.analysis import verdict as V
from wbcbench.analysis.verdict import (  # noqa: F401
    ALPHA,
    BESIDE_METRICS,
    CLAIM_WORDS,
    METRIC_NAMES,
    MIN_PAIRS,
    ONE_CLASS_SHARE,
    PRIMARY_METRIC,
    ROBUSTNESS,
    SCORE,
    STUDY_METRICS,
    TEST_TIME,
    WORDS,
    Claim,
    claim_summary,
    claim_word,
)
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, STANDARD  # noqa: F401

GRID = "cpu-study"
#: The study's models in table order.
STUDY_MODELS = ("resnet18_bn", "resnet18_gn", "resnet18_in", "resnet18_ln", "resnet18_nonorm", "vit_tiny",
                "efficientnet_lite0", "efficientnet_lite0_freezebn")

_BN_MODELS = ("resnet18_bn", "efficientnet_lite0")
CLAIMS = (
    Claim("a", "BN collapses under shift relative to the same ResNet-18 without BN statistics", ROBUSTNESS,
          tuple((m, STANDARD, "resnet18_bn", STANDARD)
                for m in ("resnet18_gn", "resnet18_ln", "resnet18_in", "resnet18_nonorm"))),
    Claim("b", "GroupNorm holds up better than BN", ROBUSTNESS, (("resnet18_gn", STANDARD, "resnet18_bn", STANDARD),)),
    Claim("c", "frozen BN helps (EfficientNet-Lite0 with BN frozen at ImageNet statistics vs BN in train mode)",
          ROBUSTNESS, (("efficientnet_lite0_freezebn", STANDARD, "efficientnet_lite0", STANDARD),)),
    Claim("d", "a ViT holds up better than the BN ResNet-18", ROBUSTNESS,
          (("vit_tiny", STANDARD, "resnet18_bn", STANDARD),)),
    Claim("e", "AdaBN recovers accuracy of BN models", TEST_TIME, tuple((m, "adabn", m, STANDARD) for m in _BN_MODELS)),
    Claim("f", "TENT recovers accuracy of BN models", TEST_TIME, tuple((m, "tent", m, STANDARD) for m in _BN_MODELS)),
)



def verdict_table(runs: pd.DataFrame, claims=CLAIMS, domains=SHIFTED_DOMAINS, grid: str | None = GRID) -> pd.DataFrame:
    """The plan's verdict on this study's claims (wbcbench.analysis.verdict.verdict_table)."""
    return V.verdict_table(runs, claims, grid, domains)


def grid_progress(runs: pd.DataFrame, grid: str = GRID) -> dict:
    """How far this study's grid is (wbcbench.analysis.verdict.grid_progress)."""
    return V.grid_progress(runs, grid)
