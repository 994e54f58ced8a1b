"""The second addendum's machinery (wbcbench.analysis.bootstrap, wbcbench.analysis.pretrained_v2) on predictions
where the answer is known: the bootstrap against compute_metrics and its edge cases, the per-domain words, the
bootstrap's veto on a t-test word, and the recipe rule v2's gate."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wbcbench.analysis import bootstrap, pretrained_v2
from wbcbench.analysis.recipes import choose, recipe_means
from wbcbench.analysis.verdict import variant_seeds
from wbcbench.core.classes import CLASSES
from wbcbench.core.metrics import compute_metrics
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, STANDARD, row_label
from wbcbench.sweep.grids import grid_size


def predictions(labels, preds):
    return pd.DataFrame({"path": [f"img{i:04d}.png" for i in range(len(labels))], "label": labels,
                         "prediction": preds})


def balanced_min5(labels, preds):
    y = np.array([CLASSES.index(c) for c in labels])
    p = np.eye(len(CLASSES))[[CLASSES.index(c) for c in preds]]
    return compute_metrics(y, p)["balanced_accuracy_min5"]


def test_the_bootstrap_is_centred_on_the_metric_difference():
    rng = np.random.default_rng(1)
    labels = list(rng.choice(CLASSES[1:], 200)) + ["Basophil"] * 3   # 3 basophils: left out of the metric
    pairs, diffs = [], []
    for _ in range(3):
        a = [c if rng.random() < 0.8 else "Neutrophil" for c in labels]
        b = [c if rng.random() < 0.6 else "Neutrophil" for c in labels]
        pairs.append((predictions(labels, a), predictions(labels, b)))
        diffs.append(balanced_min5(labels, a) - balanced_min5(labels, b))
    lo, hi = bootstrap.paired_interval(pairs, n_resamples=999)
    assert lo < np.mean(diffs) < hi and 0 < lo and hi - lo < 0.25
    # more test images, narrower interval
    wide = bootstrap.paired_interval([(predictions(labels[:60], a[:60]), predictions(labels[:60], b[:60]))
                                      for a, b in ((p[0]["prediction"].tolist(), p[1]["prediction"].tolist())
                                                   for p in pairs)], n_resamples=999)
    assert wide[1] - wide[0] > hi - lo


def test_bootstrap_edge_cases():
    labels = ["Lymphocyte"] * 10 + ["Neutrophil"] * 10
    same = predictions(labels, labels)
    assert bootstrap.paired_interval([(same, same)], n_resamples=199) == (0.0, 0.0)
    wrong = predictions(labels, ["Monocyte"] * 20)
    assert bootstrap.paired_interval([(same, wrong)], n_resamples=199) == (1.0, 1.0)
    other = predictions(labels[:-1], labels[:-1])
    with pytest.raises(Exception, match="different images"):
        bootstrap.paired_interval([(same, other)], n_resamples=199)
    assert all(np.isnan(bootstrap.paired_interval([])))


@pytest.mark.parametrize("words, want", [
    (["holds", "holds", "inconclusive"], "holds"),
    (["holds", "inconclusive", "inconclusive"], "inconclusive"),        # one network of three is not enough
    (["holds", "holds", "contradicted"], "mixed"),
    (["contradicted", "contradicted", "uninformative"], "contradicted"),
    (["uninformative"] * 3, "uninformative"),
    (["undetermined"] * 3, "undetermined"),
    (["holds", "uninformative", "uninformative"], "inconclusive"),
])
def test_domain_word(words, want):
    assert pretrained_v2.domain_word(words) == want


def test_the_bootstrap_vetoes_a_t_test_word(tmp_path):
    """Two seeds whose gains agree (tiny t-test p) but on 12 images: the t-test says 'holds', the bootstrap over
    images does not exclude 0, so the plan's word is 'inconclusive'; with many images both agree."""
    rows = []

    def write(name, labels, preds):
        d = tmp_path / name
        d.mkdir()
        predictions(labels, preds).to_csv(d / "predictions.csv", index=False)
        return str(d)

    for n, test in ((12, "lisc"), (400, "bccd")):
        labels = (["Lymphocyte", "Neutrophil"] * n)[:n]
        for seed in (0, 1):
            a = list(labels)
            a[0] = "Monocyte" if n == 12 else a[0]
            b = list(labels)
            k = 1 if n == 12 else 120
            b[:k + 1] = ["Monocyte"] * (k + 1)
            rows.append({"a": "m", "mode_a": "adabn", "b": "m", "mode_b": STANDARD, "test_set": test, "seed": seed,
                         "dir_a": write(f"{test}a{seed}", labels, a), "dir_b": write(f"{test}b{seed}", labels, b)})
    runs = pd.DataFrame([{"model": "m", "eval_mode": r[f"mode_{s}"], "test_set": r["test_set"], "seed": r["seed"],
                          "run_dir": f"run{r['seed']}", "eval_dir": r[f"dir_{s}"]} for r in rows for s in "ab"])
    v = pd.DataFrame([{"a": "m", "mode_a": "adabn", "b": "m", "mode_b": STANDARD, "label_a": "m + AdaBN",
                       "label_b": "m", "test_set": t, "word": "holds"} for t in ("lisc", "bccd")])
    out = pretrained_v2.with_bootstrap(v, runs).set_index("test_set")
    assert out.loc["lisc", "word_t"] == "holds" and out.loc["lisc", "word"] == "inconclusive"
    assert out.loc["lisc", "boot_lo"] <= 0 < out.loc["lisc", "boot_hi"]
    assert out.loc["bccd", "word"] == "holds" and out.loc["bccd", "boot_lo"] > 0


def test_recipe_gate_v2_reads_the_arms_standard_score():
    """AdaBN costs in-domain on pbc:test, but the v2 gate reads the arm's standard pbc:test score, so the
    AdaBN recipe is a candidate; under the first addendum's gate it would not be."""
    plain, adabn = pretrained_v2.BASE, row_label(pretrained_v2.BASE, "adabn")
    rows = []
    for seed in range(3):
        for mode, in_domain, shifted in ((STANDARD, 0.98, 0.40), ("adabn", 0.90, 0.60)):
            for test in (IN_DOMAIN, *SHIFTED_DOMAINS):
                rows.append({"model": plain, "eval_mode": mode, "test_set": test, "seed": seed, "profile": "p",
                             "train": "pbc:train", "run_dir": f"r{seed}",
                             "balanced_accuracy_min5": in_domain if test == IN_DOMAIN else shifted})
    df = pd.DataFrame(rows)
    rule = pretrained_v2.RULE.__class__(pretrained_v2.RULE.grid, ((plain, STANDARD), (plain, "adabn")),
                                        gate_standard=True)
    strict = pretrained_v2.RULE.__class__(rule.grid, rule.recipes, gate_standard=False)
    fake_grid = {"profile": "p", "train": "pbc:train", "seeds": [0, 1, 2], "models": [plain]}
    import wbcbench.analysis.verdict as verdict_module
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verdict_module, "get_grid", lambda name: fake_grid)
        assert choose(recipe_means(df, rule), SHIFTED_DOMAINS, rule) == adabn
        assert choose(recipe_means(df, strict), SHIFTED_DOMAINS, strict) == plain


def test_no_runs_yet_gives_undetermined_words_and_no_recipe():
    """A grid with no finished run: every comparison undetermined, every domain word too, nothing recommended."""
    v = pretrained_v2.verdict(pd.DataFrame())
    assert len(v) == sum(len(c.comparisons) for c in pretrained_v2.CLAIMS) * 4 and set(v["word"]) == {"undetermined"}
    assert set(pretrained_v2.domain_words(v)[list(SHIFTED_DOMAINS)].stack()) == {"undetermined"}
    assert pretrained_v2.recommendation(pd.DataFrame())["recipe"] is None


def test_the_grid_runs_lite1_at_seed_0_only_and_every_other_arm_at_five():
    """The plan's 10-hour rule, as applied after seed 0 projected the grid past 10 hours."""
    seeds = variant_seeds(pretrained_v2.GRID)
    assert {v: s for v, s in seeds.items() if "lite1" in v} == {
        "efficientnet_lite1": [0], "efficientnet_lite1_freezebn": [0], "efficientnet_lite1_freezebn_last": [0]}
    assert all(s == [0, 1, 2, 3, 4] for v, s in seeds.items() if "lite1" not in v) and len(seeds) == 12
    assert grid_size(pretrained_v2.GRID)["runs"] == sum(len(s) for s in seeds.values()) == 48
