"""The CPU study's verdict by the analysis plan (wbcbench.analysis.cpu_study) and its tables
(wbcbench.report.run_tables), on hand-made tables and run folders where the answer is known, on an empty
folder and on the committed results/cpu (a fixture for the machinery: those runs are being replaced).
Expected p-values come from scipy's own t-tests on the numbers written here, Holm from the textbook
step-down written out below."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from runfolders import eye, runs_frame, write_run
from scipy import stats

from wbcbench.analysis import cpu_study
from wbcbench.core.paths import REPO_ROOT
from wbcbench.core.profiles import PROFILES
from wbcbench.engine.reproduce import compare_runs, retrained_checkpoint
from wbcbench.report import run_tables, verdict_text
from wbcbench.report.tables import row_label, summary_table
from wbcbench.runs.collect import load_runs
from wbcbench.sweep.grids import CPU_MODELS, model_names


def study_summary(df):
    return summary_table(df, metrics=cpu_study.STUDY_METRICS, model_order=cpu_study.STUDY_MODELS)


# ------------------------------------------------------------------ the verdict, where the answer is known

MAJ = 0.6  # every domain's majority-class accuracy here
BN_IN = np.full(5, 0.95)
BN = {"lisc": np.array([0.35, 0.55, 0.25, 0.45, 0.30]), "bccd": np.array([0.25, 0.22, 0.24, 0.20, 0.23])}
# per model: in-domain score, and per domain (delta = the BN network's drop minus this one's, per seed 0-4;
# accuracy on the domain, share of images in the most-predicted class). None: accuracy = the score.
ALT = {
    "resnet18_gn": (0.70, {"lisc": ([.10, .12, .09, .11, .10], None, None),      # consistent: holds
                           "bccd": ([.40, .45, .42, .41, .44], 0.1, 0.8)}),      # both at floor: uninformative
    "resnet18_ln": (0.80, {"lisc": ([.02, .09, .01, .08, .05], None, None),      # raw p 0.034: Holm undoes it
                           "bccd": ([.20, .25, .22, .18, .21], 0.7, 0.9)}),      # ln above majority: tested
    "resnet18_in": (0.75, {"lisc": ([.00, .03, -.02, .01, -.01], None, None),    # no effect
                           "bccd": ([.15, .19, .12, .16, .18], 0.1, 0.4)}),      # most images not in one class
    "resnet18_nonorm": (0.90, {"lisc": ([-.10, -.12, -.11, -.09, -.13], None, None),  # loses more: contradicted
                               "bccd": ([.01, -.02, .03, .00, -.01], 0.65, 0.9)}),    # accuracy beside only
}
BN_ACC, BN_TOP = {"bccd": 0.2}, {"bccd": 0.9}


def _rows(model, test, values, mode="standard", acc=None, top=None, seeds=range(5), **extra):
    return [(model, mode, test, s, float(v), {"accuracy": float(v) if acc is None else acc,
                                              "top_prediction_share": top, "majority_baseline": MAJ, **extra})
            for s, v in zip(seeds, values)]


def drops_of(model):
    """The drop from in-domain per seed and domain, and the delta against BN, as ALT defines them."""
    inside, per = ALT[model]
    return {t: (BN_IN - BN[t]) - np.array(d) for t, (d, _, _) in per.items()}, inside


def known_runs() -> pd.DataFrame:
    rows = _rows("resnet18_bn", "pbc:test", BN_IN)
    for t in BN:
        rows += _rows("resnet18_bn", t, BN[t], acc=BN_ACC.get(t), top=BN_TOP.get(t))
    for m, (inside, per) in ALT.items():
        seeds = list(range(5))[::-1]  # listed in reverse: pairs must come from the seed, not the row order
        rows += _rows(m, "pbc:test", np.full(5, inside), seeds=seeds)
        for t, (_, acc, top) in per.items():
            rows += _rows(m, t, (inside - drops_of(m)[0][t])[::-1], acc=acc, top=top, seeds=seeds)
    # (c) frozen BN loses 7-11 points more than BN in train mode on lisc, and has no bccd evaluation
    eff_lisc = np.array([0.50, 0.52, 0.48, 0.51, 0.49])
    rows += _rows("efficientnet_lite0", "pbc:test", np.full(5, 0.90)) + _rows("efficientnet_lite0", "lisc", eff_lisc)
    rows += _rows("efficientnet_lite0_freezebn", "pbc:test", np.full(5, 0.88))
    rows += _rows("efficientnet_lite0_freezebn", "lisc", 0.88 - (0.90 - eff_lisc + [.08, .10, .09, .07, .11]))
    # on bccd the seeds only partly overlap (0-3 and 1-4): the pairs are seeds 1-3, losing 5, 15, 10 points less
    eff_bccd = np.array([0.30, 0.32, 0.28, 0.31])
    rows += _rows("efficientnet_lite0", "bccd", eff_bccd, seeds=range(4))
    rows += _rows("efficientnet_lite0_freezebn", "bccd",
                  [*(0.88 - (0.90 - eff_bccd[1:] - [.05, .15, .10])), 0.5], seeds=range(1, 5))
    # (e) AdaBN: +18-25 points for BN on lisc; on bccd both evaluations at the floor (uninformative);
    # EfficientNet gains 4-6 points on lisc in every run, and has a second seed-2 run evaluated on lisc
    # without AdaBN (0.95): paired by run it does not count, averaged by seed it would hide the gain
    rows += _rows("resnet18_bn", "lisc", BN["lisc"] + [.20, .25, .22, .18, .24], mode="adabn")
    rows += _rows("resnet18_bn", "bccd", BN["bccd"] + [.30, .20, .25, .30, .20], mode="adabn", acc=0.3, top=0.7)
    rows += _rows("efficientnet_lite0", "lisc", eff_lisc + [.05, .04, .06, .06, .04], mode="adabn")
    rows += _rows("efficientnet_lite0", "lisc", [0.95], seeds=[2], run_dir="/runs/efficientnet_lite0-s2-again")
    # (d) one ViT seed: undetermined; (f) no TENT evaluation at all
    rows += _rows("vit_tiny", "pbc:test", [0.9], seeds=[0]) + _rows("vit_tiny", "lisc", [0.6], seeds=[0])
    # never counted: a model the grid does not train, another profile, a seed outside the grid
    rows += _rows("vgg16", "pbc:test", np.full(5, 0.9)) + _rows("vgg16", "lisc", np.full(5, .1))
    rows += _rows("resnet18_gn", "pbc:test", [0.0], seeds=[0], run_dir="/smoke/gn", profile="smoke")
    rows += _rows("resnet18_gn", "lisc", [0.99], seeds=[0], run_dir="/smoke/gn", profile="smoke")
    rows += _rows("resnet18_bn", "pbc:test", [0.1], seeds=[7]) + _rows("resnet18_bn", "lisc", [0.9], seeds=[7])
    return runs_frame(rows)


def textbook_holm(p: dict) -> dict:
    """Holm's adjusted p by the definition: p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j))."""
    keys = sorted(p, key=p.get)
    out, running = {}, 0.0
    for j, k in enumerate(keys):
        running = max(running, min(1.0, (len(keys) - j) * p[k]))
        out[k] = running
    return out


def test_verdict_where_the_answer_is_known():
    v = cpu_study.verdict_table(known_runs(), domains=("lisc", "bccd"))
    assert len(v) == sum(len(c.comparisons) for c in cpu_study.CLAIMS) * 2
    key = v.set_index(["claim", "label_a", "test_set"])

    # claim (a): the effect is BN's drop minus the other's, paired by seed; p is scipy's paired t-test
    p = {}
    for m in ALT:
        drops, _ = drops_of(m)
        for t in ("lisc", "bccd"):
            r = key.loc[("a", m, t)]
            bn_drop = BN_IN - BN[t]
            assert r["n"] == 5 and r["effect"] == pytest.approx(np.mean(bn_drop - drops[t]))
            assert r["drop_a"] == pytest.approx(drops[t].mean()) and r["drop_b"] == pytest.approx(bn_drop.mean())
            assert r["p"] == pytest.approx(stats.ttest_rel(bn_drop, drops[t]).pvalue)
            if not (m == "resnet18_gn" and t == "bccd"):
                p[(m, t)] = r["p"]
    # the uninformative comparison is left out of the family: m = 7, not 8
    for k, adj in textbook_holm(p).items():
        assert key.loc[("a", *k), "p_holm"] == pytest.approx(adj)
    assert math.isnan(key.loc[("a", "resnet18_gn", "bccd"), "p_holm"])
    words = {k: key.loc[("a", *k), "word"] for k in [*p, ("resnet18_gn", "bccd")]}
    assert words == {("resnet18_gn", "lisc"): "holds", ("resnet18_gn", "bccd"): "uninformative",
                     ("resnet18_ln", "lisc"): "inconclusive", ("resnet18_ln", "bccd"): "holds",
                     ("resnet18_in", "lisc"): "inconclusive", ("resnet18_in", "bccd"): "holds",
                     ("resnet18_nonorm", "lisc"): "contradicted", ("resnet18_nonorm", "bccd"): "inconclusive"}
    ln = key.loc[("a", "resnet18_ln", "lisc")]
    assert ln["p"] < 0.05 <= ln["p_holm"] and ln["effect"] > 0  # without Holm this one would hold
    # (a) is tested on the drop: gn scores lower than BN on lisc itself, yet loses less
    gn = key.loc[("a", "resnet18_gn", "lisc")]
    assert gn["score_a"] < gn["score_b"] and gn["word"] == "holds"
    # accuracy beside, never deciding: nonorm loses 50 points less accuracy on bccd in every seed
    nn = key.loc[("a", "resnet18_nonorm", "bccd")]
    assert nn["effect_accuracy"] == pytest.approx((0.95 - 0.2) - (0.90 - 0.65)) and nn["word"] == "inconclusive"
    # uninformative needs every evaluation at the floor AND most images in one class
    assert (key.loc[("a", "resnet18_gn", "bccd"), ["accuracy_a", "top_share_a", "majority"]].tolist()
            == pytest.approx([0.1, 0.8, MAJ]))
    assert not key.loc[("a", "resnet18_ln", "bccd"), "uninformative"]   # ln's accuracy is above the majority
    assert not key.loc[("a", "resnet18_in", "bccd"), "uninformative"]   # in puts only 40% into one class

    # claim (b): the same gn comparisons in a family of their own (m = 1 on lisc, bccd uninformative)
    b = key.loc[("b", "resnet18_gn", "lisc")]
    assert b["p_holm"] == pytest.approx(b["p"]) and b["word"] == "holds"
    # claim (c): contradicted on lisc; on bccd three shared seeds, t = 0.10 / (0.05 / sqrt 3) on 2 df
    assert key.loc[("c", "efficientnet_lite0_freezebn", "lisc"), "word"] == "contradicted"
    assert key.loc[("c", "efficientnet_lite0_freezebn", "lisc"), "effect"] == pytest.approx(-0.09)
    c = key.loc[("c", "efficientnet_lite0_freezebn", "bccd")]
    assert c["n"] == 3 and c["effect"] == pytest.approx(0.10) and c["word"] == "inconclusive"
    assert c["p"] == pytest.approx(2 * stats.t.sf(0.10 / (0.05 / math.sqrt(3)), 2))
    # claim (d): one ViT seed
    assert tuple(key.loc[("d", "vit_tiny", "lisc"), ["n", "word"]]) == (1, "undetermined")
    # claim (e): gains paired by run; BN on bccd uninformative; the family is the two lisc comparisons
    e_bn, e_eff = key.loc[("e", "resnet18_bn + AdaBN", "lisc")], key.loc[("e", "efficientnet_lite0 + AdaBN", "lisc")]
    gains_bn, gains_eff = np.array([.20, .25, .22, .18, .24]), np.array([.05, .04, .06, .06, .04])
    assert e_bn["effect"] == pytest.approx(gains_bn.mean()) and e_eff["effect"] == pytest.approx(gains_eff.mean())
    assert e_eff["n"] == 5 and e_eff["p"] == pytest.approx(stats.ttest_1samp(gains_eff, 0).pvalue)
    assert {"bn": e_bn["p_holm"], "eff": e_eff["p_holm"]} == pytest.approx(
        textbook_holm({"bn": e_bn["p"], "eff": e_eff["p"]}))
    assert key.loc[("e", "resnet18_bn + AdaBN", "bccd"), "word"] == "uninformative"
    assert key.loc[("e", "efficientnet_lite0 + AdaBN", "bccd"), "word"] == "undetermined"
    # claim (f): no TENT evaluation anywhere
    assert (v[v["claim"] == "f"]["word"] == "undetermined").all()

    s = cpu_study.claim_summary(v).set_index("claim")
    assert s["verdict"].to_dict() == {"a": "mixed", "b": "holds", "c": "contradicted", "d": "inconclusive",
                                      "e": "holds", "f": "inconclusive"}
    assert tuple(s.loc["a", list(cpu_study.WORDS)]) == (3, 1, 3, 1, 0) and s.loc["a", "comparisons"] == 8
    assert s.loc["a", "tested on"] == cpu_study.ROBUSTNESS and s.loc["e", "tested on"] == cpu_study.TEST_TIME

    g = cpu_study.grid_progress(known_runs())
    assert (g["finished"], g["total"]) == (36, 40) and g["others"] == ["vgg16"]
    assert g["repeated"] == ["efficientnet_lite0 seed 2"]


def test_verdict_words_and_sentences_render_the_table():
    v = cpu_study.verdict_table(known_runs(), domains=("lisc", "bccd"))
    text = verdict_text.verdict_sentences(v)
    gn = v[(v["claim"] == "a") & (v["a"] == "resnet18_gn") & (v["test_set"] == "lisc")].iloc[0]
    half = stats.t.ppf(0.975, 4) * np.std([.10, .12, .09, .11, .10], ddof=1) / math.sqrt(5)
    assert (gn["lo"], gn["hi"]) == (pytest.approx(gn["effect"] - half), pytest.approx(gn["effect"] + half))
    assert (f"resnet18_gn vs resnet18_bn on lisc: **holds**: drop from pbc:test {gn['drop_a'] * 100:.1f} pp vs "
            f"{gn['drop_b'] * 100:.1f} pp, effect +10.4 pp (positive: resnet18_gn loses less), 95% CI "
            f"[+{gn['lo'] * 100:.1f}, +{gn['hi'] * 100:.1f}] pp") in text
    assert "resnet18_gn vs resnet18_bn on bccd: **uninformative**: both score at most the majority-class " \
           "accuracy (10.0% and 20.0% vs 60.0%) and put 80.0% and 90.0% of the images into one class" in text
    assert "vit_tiny vs resnet18_bn on lisc: **undetermined** (1 paired seed; the test needs 2)." in text
    lines = verdict_text.claim_sentences(v)
    assert len(lines) == len(cpu_study.CLAIMS)
    overall = "overall word, one comparison holding suffices"
    assert lines[0].startswith("(a) BN collapses under shift relative to the same ResNet-18 without BN statistics: "
                               f"**mixed** ({overall}; 8 comparisons: holds 3, contradicted 1, inconclusive 3, "
                               "uninformative 1)")
    assert "contradicted for resnet18_nonorm vs resnet18_bn on lisc (-11.0 pp" in lines[0]
    assert lines[5] == f"(f) TENT recovers accuracy of BN models: **inconclusive** ({overall}; 4 comparisons: " \
                       "undetermined 4)."
    # every word of the table is one of the plan's, and the plan's rules hold row by row
    assert set(v["word"]) <= set(cpu_study.WORDS)
    tested = v[v["p_holm"].notna()]
    assert (tested["p_holm"] >= tested["p"] - 1e-15).all()
    assert ((v["word"] == "holds") == (v["p_holm"] < cpu_study.ALPHA) & (v["effect"] > 0)).all()
    assert ((v["word"] == "contradicted") == (v["p_holm"] < cpu_study.ALPHA) & (v["effect"] < 0)).all()
    assert ((v["word"] == "undetermined") == (v["n"] < cpu_study.MIN_PAIRS)).all()


def test_a_comparison_in_two_claims_says_why_its_holm_p_differ():
    """GroupNorm vs BN is in claims (a) and (b): one p, a Holm p per family, and the page says why, once."""
    v = cpu_study.verdict_table(known_runs(), domains=("lisc", "bccd"))
    gn = v[(v["label_a"] == "resnet18_gn") & (v["test_set"] == "lisc")].set_index("claim")
    assert gn.loc["a", "p"] == gn.loc["b", "p"] and gn.loc["a", "p_holm"] > gn.loc["b", "p_holm"]
    note = verdict_text.holm_note(v)
    tested_a = int(v.loc[v["claim"] == "a", "p_holm"].notna().sum())
    assert "resnet18_gn vs resnet18_bn is tested by claims (a) and (b)" in note
    holm = {c: "< 0.001" if h < 0.001 else f"= {h:.3f}" for c, h in gn["p_holm"].items()}
    assert f"Holm p {holm['a']} in (a) and Holm p {holm['b']} in (b)" in note
    assert f"claim (a) has 8 comparisons (4 pairs × 2 shifted domains), {tested_a} of them tested" in note
    assert verdict_text.holm_note(v[v["claim"].isin(["c", "d"])]) == ""  # nothing shared, nothing said
    text = verdict_text.verdict_sentences(v)
    assert text.count(note) == 1 and text.count("(a) BN collapses under shift") == 1
    bare = verdict_text.verdict_sentences(v, claims=False)  # beside claim_summary's table: no verdict repeated
    assert "BN collapses under shift" not in bare and "**Claim (a)**, every comparison:" in bare
    assert bare.count("resnet18_gn vs resnet18_bn on lisc: **") == 2  # once in (a), once in (b)


def test_claim_word_rule():
    assert cpu_study.claim_word(["holds", "inconclusive", "uninformative"]) == "holds"
    assert cpu_study.claim_word(["contradicted", "undetermined"]) == "contradicted"
    assert cpu_study.claim_word(["holds", "contradicted"]) == "mixed"
    assert cpu_study.claim_word(["inconclusive", "uninformative", "undetermined"]) == "inconclusive"
    assert cpu_study.claim_word([]) == "inconclusive"


def test_claims_name_grid_models_only_and_rules_come_from_the_constants():
    grid = set(model_names(CPU_MODELS))
    for c in cpu_study.CLAIMS:
        assert c.kind in (cpu_study.ROBUSTNESS, cpu_study.TEST_TIME)
        for a, ma, b, mb in c.comparisons:
            assert {a, b} <= grid
            if c.kind == cpu_study.ROBUSTNESS:
                assert (ma, mb) == ("standard", "standard")
            else:
                assert a == b and mb == "standard"
    rules = verdict_text.rules_markdown()
    assert f"`{cpu_study.PRIMARY_METRIC}`" in rules and f"α = {cpu_study.ALPHA}" in rules and "> 50%" in rules
    assert all(f"claim ({c.id}) {c.statement}" in rules for c in cpu_study.CLAIMS)
    assert row_label("m", "tent") == "m + TENT" and row_label("m", "batch_stats") == "m + batch stats"


def test_verdict_without_runs(tmp_path):
    for empty in (pd.DataFrame(), None, load_runs(tmp_path)[0]):
        v = cpu_study.verdict_table(empty)
        assert len(v) == sum(len(c.comparisons) for c in cpu_study.CLAIMS) * len(cpu_study.SHIFTED_DOMAINS)
        assert (v["word"] == "undetermined").all() and (v["n"] == 0).all()
        assert (cpu_study.claim_summary(v)["verdict"] == "inconclusive").all()
    assert (verdict_text.progress_sentence(pd.DataFrame(), "results/x")
            == "0 of 40 runs of the `cpu-study` grid finished in `results/x`.")


def test_top_prediction_share_from_predictions_csv(tmp_path):
    write_run(tmp_path, "resnet18_bn", 0, {"bccd": (0.5, eye(1)), "lisc": (0.4, eye(1))},
              predictions={"bccd": ["Neutrophil", "Neutrophil", "Monocyte", "Neutrophil"]})
    runs, _ = load_runs(tmp_path)
    share = runs.set_index("test_set")["top_prediction_share"]
    assert share["bccd"] == pytest.approx(0.75) and pd.isna(share["lisc"])  # no predictions.csv: unknown


# ------------------------------------------------------------------ the committed runs, the README

COMMITTED = REPO_ROOT / "results" / "cpu"


@pytest.fixture(scope="module")
def committed():
    return load_runs(COMMITTED)[0]


def test_verdict_on_the_committed_runs(committed):
    """The machinery on real run folders: the table's numbers re-derived from the metrics and predictions."""
    v = cpu_study.verdict_table(committed)
    assert len(v) == sum(len(c.comparisons) for c in cpu_study.CLAIMS) * len(cpu_study.SHIFTED_DOMAINS)
    assert set(v["word"]) <= set(cpu_study.WORDS) and set(v["a"]) | set(v["b"]) <= set(cpu_study.STUDY_MODELS)
    r = v[(v["claim"] == "b") & (v["test_set"] == "lisc")].iloc[0]
    per_seed = {}
    for m in ("resnet18_gn", "resnet18_bn"):
        g = committed[(committed["model"] == m) & (committed["eval_mode"] == "standard")]
        w = g.pivot(index="seed", columns="test_set", values=cpu_study.PRIMARY_METRIC)
        per_seed[m] = w["pbc:test"] - w["lisc"]
    assert r["effect"] == pytest.approx((per_seed["resnet18_bn"] - per_seed["resnet18_gn"]).mean())
    p = stats.ttest_rel(per_seed["resnet18_bn"], per_seed["resnet18_gn"]).pvalue
    assert r["p"] == pytest.approx(p, nan_ok=True)
    # the share of the most-predicted class agrees with the confusion matrix's column sums
    for row in committed.sample(20, random_state=0).itertuples():
        cm = np.asarray(run_tables._metrics(row.eval_dir)["confusion"])
        assert row.top_prediction_share == pytest.approx(cm.sum(axis=0).max() / cm.sum())
    if len(committed):
        assert cpu_study.grid_progress(committed)["finished"] <= 40


# ------------------------------------------------------------------------------------------ tables

def test_domain_drops_by_hand():
    df = runs_frame([("resnet18_bn", "standard", "pbc:test", 0, 0.9), ("resnet18_bn", "standard", "lisc", 0, 0.5),
                     ("resnet18_bn", "standard", "pbc:test", 1, 0.8), ("resnet18_bn", "standard", "lisc", 1, 0.6)])
    d = run_tables.domain_drops(df)
    assert len(d) == 1
    r = d.iloc[0]
    # drops 0.4 and 0.2: mean 0.3, sd 0.141421, se 0.1, t(0.975, 1) = 12.7062
    assert r["drop_mean"] == pytest.approx(0.3)
    assert r["drop_ci95"] == pytest.approx(1.27062, abs=1e-4)
    assert r["seeds"] == 2 and r["test_set"] == "lisc"
    assert run_tables.domain_drops(pd.DataFrame()).empty


def test_domain_drops_order_and_one_seed_bar():
    df = runs_frame([(m, e, t, 0, v) for m in ("resnet18_gn", "resnet18_bn") for e in ("adabn", "standard")
                     for t, v in (("pbc:test", 0.9), ("jtsc", 0.4), ("lisc", 0.6))])
    d = run_tables.domain_drops(df)
    assert list(zip(d["label"], d["test_set"])) == [
        ("resnet18_bn", "lisc"), ("resnet18_bn", "jtsc"), ("resnet18_bn + AdaBN", "lisc"),
        ("resnet18_bn + AdaBN", "jtsc"), ("resnet18_gn", "lisc"), ("resnet18_gn", "jtsc"),
        ("resnet18_gn + AdaBN", "lisc"), ("resnet18_gn + AdaBN", "jtsc")]
    one = d.iloc[1]  # one seed: no interval, a zero-width bar around the mean
    assert one["drop_mean"] == pytest.approx(0.5) and math.isnan(one["drop_ci95"])
    assert one["drop_lo"] == one["drop_hi"] == pytest.approx(0.5)


def test_rank_models_needs_every_domain():
    df = runs_frame([("good", "standard", t, 0, 0.8) for t in cpu_study.SHIFTED_DOMAINS]
                    + [("bad", "standard", t, 0, v) for t, v in zip(cpu_study.SHIFTED_DOMAINS, [0.1, 0.2, 0.3, 0.4])]
                    + [("partial", "standard", "lisc", 0, 0.99)])
    r = run_tables.rank_models(study_summary(df))
    assert list(r["model"]) == ["good", "bad"]
    assert r.iloc[1, 1] == pytest.approx(0.25)


def test_method_gains_are_paired_by_run():
    std = [0.5, 0.6, 0.7, 0.9]   # seed 3 has no AdaBN result: left out of the pairs
    ada = [0.6, 0.65, 0.8]
    df = runs_frame([("M", "standard", "jtsc", s, v) for s, v in enumerate(std)]
                    + [("M", "adabn", "jtsc", s, v) for s, v in enumerate(ada)]
                    + [("M", "standard", "jtsc", 0, 0.99, {"run_dir": "/runs/other"})])  # another run of seed 0
    g = run_tables.method_gains(df, "adabn", "accuracy", domains=("jtsc", "lisc"))
    assert list(g["test_set"]) == ["jtsc"]  # no lisc runs: no row, not a row of NaN
    r = g.iloc[0]
    # per-run differences 0.1, 0.05, 0.1: mean 0.083333, sd 0.028868, se 0.016667, t(0.975, 2) = 4.302653
    assert r["seeds"] == 3 and r["gain"] == pytest.approx(0.083333, abs=1e-6) and r["method"] == "adabn"
    assert r["lo"] == pytest.approx(0.011622, abs=1e-5)
    t = run_tables.gain_table(g)
    assert t.loc["M + AdaBN", "jtsc"] == "+8.3 [+1.2, +15.5]" and t.loc["M + AdaBN", "seeds"] == 3
    assert run_tables.method_gains(df, "tent").empty and run_tables.gain_table(pd.DataFrame()).empty
    one = run_tables.method_gains(df[df["seed"] == 1], "adabn", "accuracy", domains=("jtsc",))
    assert one["gain"].iloc[0] == pytest.approx(0.05) and pd.isna(one["lo"].iloc[0])
    assert run_tables.gain_table(one).loc["M + AdaBN", "jtsc"] == "+5.0 (no CI)"


def test_normalisation_table_rows_in_the_given_order_with_their_layer():
    df = runs_frame([("resnet18_gn", "standard", "lisc", 0, 0.4), ("resnet18_bn", "standard", "lisc", 0, 0.3),
                     ("resnet18_bn", "adabn", "lisc", 0, 0.5), ("vgg16", "standard", "lisc", 0, 0.9)])
    layers = {"resnet18_bn": "BatchNorm", "resnet18_gn": "GroupNorm", "resnet18_ln": "LayerNorm"}
    t = run_tables.normalisation_table(summary_table(df), layers, metric="balanced_accuracy", chance={"lisc": 0.2})
    assert list(t.index) == ["resnet18_bn", "resnet18_gn", "chance (1/classes)"]  # no AdaBN, no vgg16, no runless
    assert t.loc["chance (1/classes)", "lisc"] == "20.0"
    assert list(t["normalisation"]) == ["BatchNorm", "GroupNorm", ""]
    assert t.loc["resnet18_gn", "lisc"] == "40.0 (1 seed, no CI)"
    assert run_tables.normalisation_table(study_summary(runs_frame([("vgg16", "standard", "lisc", 0, 1.0)])),
                                          layers).empty


# ------------------------------------------------------------------------------- from run folders

def test_from_run_folders(tmp_path):
    write_run(tmp_path, "resnet18_bn", 0, {"bccd": (0.5, eye(1)), "bccd@adabn": (0.6, eye(2))})
    write_run(tmp_path, "resnet18_bn", 1, {"bccd": (0.7, eye(3)), "bccd@adabn": (0.8, eye(4))})
    write_run(tmp_path, "resnet18_bn", 2, {"bccd": (0.1, eye(100))}, done=False)  # never counted
    write_run(tmp_path, "efficientnet_lite0", 0, {"bccd": (0.9, eye(5))}, hparams={"pretrained": True})

    runs, skipped = load_runs(tmp_path)
    assert len(skipped) == 1 and len(runs) == 5
    cm, n = run_tables.summed_confusion(runs, "resnet18_bn", "bccd")
    assert n == 2 and np.array_equal(cm, np.eye(5, dtype=int) * 4)        # 1 + 3, the unfinished run left out
    cm, n = run_tables.summed_confusion(runs, "resnet18_bn", "bccd", "adabn")
    assert n == 2 and cm[0, 0] == 6
    assert run_tables.summed_confusion(runs, "vit_tiny", "bccd") == (None, 0)

    rec = run_tables.recall_by_class(runs, domains=("bccd",))
    assert list(dict.fromkeys(rec["label"])) == ["resnet18_bn", "resnet18_bn + AdaBN", "efficientnet_lite0"]
    bn = rec[(rec["label"] == "resnet18_bn")].set_index("class")
    assert math.isnan(bn.loc["Basophil", "recall"]) and bn.loc["Basophil", "images"] == 0
    assert bn.loc["Monocyte", "recall"] == pytest.approx(0.6) and bn.loc["Monocyte", "seeds"] == 2

    counts = run_tables.domain_class_counts(runs, domains=("bccd",)).iloc[0]
    assert (counts["test set"], counts["Basophil"], counts["Neutrophil"]) == ("bccd", 0, 2)
    assert counts["classes with < 5 images"] == "Basophil, Eosinophil, Lymphocyte, Monocyte, Neutrophil"

    settings, seeds = run_tables.study_protocol(tmp_path)
    assert len(settings) == 2  # the pretrained EfficientNet is a setting of its own
    assert set(settings["ImageNet-pretrained"]) == {True, False} and settings["AdaBN"].all()
    s = seeds.set_index("model")
    assert list(s.index) == ["resnet18_bn", "efficientnet_lite0"]  # study order
    assert s.loc["resnet18_bn", "seeds finished"] == 2 and s.loc["resnet18_bn", "finished"] == "0, 1"
    assert s.loc["resnet18_bn", "unfinished (running or interrupted)"] == "2"

    cmds = run_tables.study_rerun(tmp_path, out="results/cpu")
    assert list(zip(cmds["model"], cmds["seed"])) == [("resnet18_bn", 0), ("resnet18_bn", 1), ("resnet18_bn", 2),
                                                      ("efficientnet_lite0", 0)]
    eff = cmds[cmds["model"] == "efficientnet_lite0"].iloc[0]
    assert "--pretrained" in eff["cli"] and "--out results/cpu" in eff["cli"] and "--adapt adabn" in eff["cli"]
    bn0 = cmds[(cmds["model"] == "resnet18_bn") & (cmds["seed"] == 0)].iloc[0]
    assert "--pretrained" not in bn0["cli"]  # the cpu profile's own settings are not overrides
    assert PROFILES["cpu"]["crop_size"] == 48 and "--crop-size" not in bn0["cli"]

    empty = tmp_path / "nothing"
    assert run_tables.study_protocol(empty)[0].empty and run_tables.study_rerun(empty).empty
    assert run_tables.pilot_table(empty).empty


def test_pilot_table(tmp_path):
    write_run(tmp_path, "resnet18_bn", 0, {"pbc:val": (0.93, eye(1))}, hparams={"crop_size": 48},
              log_seconds=(9.0, 10.0, 11.0))
    b = write_run(tmp_path / "b", "resnet18_bn", 0, {"pbc:val": (0.87, eye(1))}, hparams={"crop_size": 32})
    (b / "eval" / "pbc:val").rename(b / "eval" / "pbc_val")  # the folder name of runs written since issue 13
    write_run(tmp_path / "c", "resnet18_bn", 0, {}, hparams={"crop_size": 64}, done=False, log_seconds=(60.0,))
    t = run_tables.pilot_table(tmp_path)
    assert list(t["crop px"]) == [32, 48, 64]
    assert list(t["training seconds"]) == [30.0, 30.0, 60.0]
    assert t["pbc:val accuracy"].iloc[1] == pytest.approx(0.93)
    assert t["pbc:val accuracy"].iloc[0] == pytest.approx(0.87)  # found by metrics.json, whatever the folder name
    assert t["status"].iloc[2] == "unfinished" and pd.isna(t["pbc:val accuracy"].iloc[2])


# ------------------------------------------------------- the study's checkpoint (notebook 04), reproduce.py

def test_compare_runs_and_retrained_checkpoint(tmp_path):
    """A retrained run matches when its predictions files are byte-identical; one changed byte shows."""
    a = write_run(tmp_path / "committed", "resnet18_bn", 0, {"bccd": (0.9, eye(5)), "lisc": (0.5, eye(5))})
    b = write_run(tmp_path / "again", "resnet18_bn", 0, {"bccd": (0.9, eye(5)), "lisc": (0.5, eye(5))})
    assert not compare_runs(a, b)["identical predictions"].any()  # no predictions files: nothing matches
    for run in (a, b):
        for t in ("bccd", "lisc"):
            (run / "eval" / t / "predictions.csv").write_text(f"index,label,pred\n0,{t},Monocyte\n")
    assert compare_runs(a, b)["identical predictions"].all()
    pred = b / "eval" / "lisc" / "predictions.csv"
    pred.write_bytes(pred.read_bytes() + b"x")
    c = compare_runs(a, b).set_index("evaluation")
    assert c.loc["bccd", "identical predictions"] and not c.loc["lisc", "identical predictions"]
    # a finished run with its model.pt is used as it is; without one and without a folder to retrain into, None
    assert retrained_checkpoint(tmp_path / "committed", "resnet18_bn", 0)[0] is None
    (a / "model.pt").write_bytes(b"")
    assert retrained_checkpoint(tmp_path / "committed", "resnet18_bn", 0)[0] == a
    run, why = retrained_checkpoint(tmp_path / "committed", "resnet18_bn", 1)
    assert run is None and "no finished `resnet18_bn` seed-1 run" in why


def test_a_retrain_is_compared_with_the_run_recorded_on_this_kind_of_machine(tmp_path, monkeypatch):
    """The study's run recorded on another CPU model is not what a retrain here can match byte for byte: the
    same run recorded on this host class (results/reproduce-refs) is, and the sentence says which it used."""
    import json
    import shutil

    from wbcbench.core.environment import environment
    from wbcbench.engine import reproduce as R

    evals = {"bccd": (0.9, eye(5)), "lisc": (0.5, eye(5))}
    preds = {"bccd": ["Monocyte"], "lisc": ["Neutrophil"]}
    study = write_run(tmp_path / "study", "resnet18_bn", 0, evals,
                      predictions={"bccd": ["Basophil"], "lisc": ["Neutrophil"]})
    here = write_run(tmp_path / "refs", "resnet18_bn", 0, evals, predictions=preds)
    for run, env in ((study, dict(environment(), cpu="Another CPU")), (here, environment())):
        cfg = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**cfg, "environment": env}))
    again = tmp_path / "again" / here.name

    def fake_reproduce(run_dir, out, data_root=None):
        shutil.copytree(here, again)
        return again
    monkeypatch.setattr(R, "reproduce", fake_reproduce)
    run, why = R.retrained_checkpoint(tmp_path / "study", "resnet18_bn", 0, retrain_into=tmp_path / "again",
                                      references=tmp_path / "refs")
    assert run == again and "recorded on this kind of machine" in why and "Another CPU" in why
    assert "identical to the same run recorded on this kind of machine" in why and "on 2 of 2 evaluations" in why
    shutil.rmtree(again)
    run, why = R.retrained_checkpoint(tmp_path / "study", "resnet18_bn", 0, retrain_into=tmp_path / "again",
                                      references=tmp_path / "nowhere")
    assert "identical to the committed run's on 1 of 2 evaluations" in why and "differ by at most" in why
