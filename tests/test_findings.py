"""The findings page's sentences and lab box: computed from the committed runs, in reader words, and the study
they report switches to the converged one only when its grid is complete."""
from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, row_label
from wbcbench.core.paths import REPO_ROOT
from wbcbench.report import findings as F
from wbcbench.report import words as W
from wbcbench.report.verdict_text import comparison_sentence
from wbcbench.runs.collect import load_runs


@pytest.fixture(scope="module")
def low_budget():
    runs, _ = load_runs(REPO_ROOT / F.LOW_BUDGET.runs_dir)
    return runs


def test_levels_are_the_arms_means_and_chance(low_budget):
    lv = F.levels(F.LOW_BUDGET, low_budget)
    assert list(lv.index) == [IN_DOMAIN, *SHIFTED_DOMAINS]
    assert (lv["arms"] == 9).all()                     # 3 networks x 3 BN arms, no augmentation
    assert (lv["low"] <= lv["high"]).all()
    assert lv.loc[IN_DOMAIN, "chance"] == pytest.approx(0.2)          # five classes
    assert lv.loc[IN_DOMAIN, "low"] > 2 * lv.loc["lisc", "low"]       # the shift is large
    arms = F.arm_runs(F.LOW_BUDGET, low_budget)
    assert not arms["model"].str.contains("+", regex=False).any()
    one = arms[(arms["test_set"] == "lisc") & (arms["eval_mode"] == "standard")]
    means = one.groupby("model")["balanced_accuracy_min5"].mean()
    assert lv.loc["lisc", "high"] == pytest.approx(means.max())


def test_the_low_budget_findings_in_reader_words_with_the_computed_levels(low_budget):
    text = F.sentences(F.LOW_BUDGET, low_budget)
    assert len(text) == 5
    joined = " ".join(text)
    for internal in ("efficientnet_lite", "_freezebn", "adabn", "lisc ", "cellavision", "nan"):
        assert internal not in joined, internal
    lv = F.levels(F.LOW_BUDGET, low_budget)
    assert f"{round(lv.loc[IN_DOMAIN, 'low'] * 100)}–{round(lv.loc[IN_DOMAIN, 'high'] * 100)}%" in text[0]
    for d in SHIFTED_DOMAINS:
        assert re.search(rf"{W.domain_name(d)} \d+–\d+%", text[1]), d
    words = F.domain_words(F.LOW_BUDGET, low_budget)
    assert "holds on LISC" in text[2] and words.loc["P1", "lisc"] == "holds"
    assert F.LOW_BUDGET.caveat in text[4]
    # AdaBN lowers CellaVision on all three networks, none significantly: said beside its word, per network
    assert re.search(r"on CellaVision it goes the other way on all three networks tested \(EfficientNet-Lite0 "
                     r"-\d+\.\d pp, inconclusive; EfficientNet-Lite1 -\d+\.\d pp, inconclusive; EfficientNet-Lite2 "
                     r"-\d+\.\d pp, inconclusive\)\. TENT: the same words per domain; on CellaVision", text[3])


def test_lead_says_whether_a_remedy_is_shown_to_help(low_budget):
    lead = F.lead(F.LOW_BUDGET, low_budget)
    assert "the remedy the plan's rule chooses is not shown to help" in lead
    lv = F.levels(F.LOW_BUDGET, low_budget)
    assert f"but {round(lv.loc['lisc':, 'low'].min() * 100)}–" in lead
    rec = {"recipe": "efficientnet_lite0+colour", "supported": True, "words": {"lisc": "holds"}}
    study = dataclasses.replace(F.LOW_BUDGET, recommendation=lambda runs: rec)
    assert "one remedy — EfficientNet-Lite0, BN fine-tuned, colour jitter — scores higher than the plain recipe on " \
        "one of the four other labs whose images chose it: LISC (undetermined on BCCD, JTSC and CellaVision); the " \
        "first box below says what it gained on labs it was not chosen on." in F.lead(study, low_budget)
    assert "% on other labs' images (the nine trained arms without augmentation or test-time methods)" in lead
    every = dict.fromkeys(SHIFTED_DOMAINS, "holds")
    study = dataclasses.replace(F.LOW_BUDGET, recommendation=lambda runs: {**rec, "words": every})
    assert "on all of the four other labs whose images chose it: LISC, BCCD, JTSC and CellaVision;" in \
        F.lead(study, low_budget)


def test_by_word_groups_domains_in_order():
    assert W.by_word({"lisc": "holds", "bccd": "inconclusive", "jtsc": "holds", "cellavision": "inconclusive"}) \
        == "holds on LISC and JTSC; inconclusive on BCCD and CellaVision"


def test_arm_and_recipe_names():
    assert W.arm_name("efficientnet_lite1_freezebn") == "EfficientNet-Lite1, BN frozen"
    assert W.arm_name("efficientnet_lite0+colour") == "EfficientNet-Lite0, BN fine-tuned, colour jitter"
    assert W.arm_name("efficientnet_lite2_freezebn_last") == "EfficientNet-Lite2, frozen BN, last stages trained"
    assert W.arm_name("resnet18_bn") == "ResNet-18, BatchNorm" and W.arm_name("efficientnet_lite0_other") == \
        "efficientnet_lite0_other"
    label = next(iter(F.LOW_BUDGET.rule.by_label))
    assert W.recipe_name(F.LOW_BUDGET.rule, label) == "EfficientNet-Lite0, BN fine-tuned"
    adabn = [k for k, (_, m) in F.LOW_BUDGET.rule.by_label.items() if m == "adabn"][0]
    assert W.recipe_name(F.LOW_BUDGET.rule, adabn).endswith("then AdaBN on the lab's images")
    assert W.listed(["a, 1", "b"], sep="; ") == "a, 1 and b" and W.listed(["a"]) == "a"


def test_every_registry_name_has_its_own_words_from_the_catalog():
    """The book's prose names any network from the torch-free catalog: family, normalisation, what sets it apart."""
    from wbcbench.models.catalog import MODELS
    named = {m: W.arm_name(m) for m in MODELS}
    assert len(set(named.values())) == len(named) and not any("_" in w for w in named.values())
    assert named["resnet18_gn"] == "ResNet-18, GroupNorm" and named["resnet18_nonorm"] == "ResNet-18, no normalisation"
    assert named["resnet50_freezebn_last16"] == "ResNet-50, frozen BN, last 16 convs trained"
    assert named["efficientnet_lite0"] == "EfficientNet-Lite0, BN fine-tuned"  # pretrained by default: fine-tuned
    assert named["resnet50"] == "ResNet-50, BatchNorm" and named["resnet18"] == "ResNet-18"
    assert W.arm_parts("efficientnet_lite2_freezebn_last+colour") == (
        "EfficientNet-Lite2", "frozen BN, last stages trained", "colour jitter")
    assert W.arm_name("resnet18_bn+colour") == "ResNet-18, BatchNorm, colour jitter"
    assert W.evaluated_name("vit_tiny", "adabn") == "ViT-Tiny, LayerNorm + AdaBN"
    assert W.arm_name("my_net") == "my_net"  # a network outside the registry keeps its id
    assert W.label_name("efficientnet_lite0+hed + scale + AdaBN") == \
        "EfficientNet-Lite0, BN fine-tuned, HED stain jitter + scale + AdaBN"
    assert W.label_name("chance (1/classes)") == "chance (1/classes)"


def test_claim_definitions_name_their_comparisons_in_words():
    from wbcbench.analysis import cpu_study, pretrained_study
    from wbcbench.report.verdict_text import claims_markdown
    cpu, pre = claims_markdown(cpu_study.CLAIMS), claims_markdown(pretrained_study.CLAIMS)
    assert "ResNet-18, GroupNorm vs ResNet-18, BatchNorm" in cpu and "ViT-Tiny, LayerNorm vs" in cpu
    assert "EfficientNet-Lite1, BN fine-tuned + TENT vs EfficientNet-Lite1, BN fine-tuned" in pre
    assert not re.search(r"resnet18_|efficientnet_|vit_tiny", cpu + pre)


def test_seeds_phrase_names_the_arms_with_fewer_seeds_and_what_it_costs():
    lite = {f"efficientnet_lite{v}{t}": 5 for v in (0, 2) for t in ("", "_freezebn")}
    assert F.seeds_phrase(pd.Series(lite)) == "5 seeds"
    cut = pd.Series({**lite, "efficientnet_lite1": 1, "efficientnet_lite1_freezebn": 1})
    assert F.seeds_phrase(cut) == ("5 seeds; EfficientNet-Lite1's two arms 1 seed, too few for a test, so a claim "
                                   "holds on a domain only where it holds on both EfficientNet-Lite0 and "
                                   "EfficientNet-Lite2")
    assert F.seeds_phrase(pd.Series({**lite, "efficientnet_lite1": 3})) == \
        "5 seeds; EfficientNet-Lite1, BN fine-tuned 3 seeds"
    assert F.seeds_phrase(pd.Series({"efficientnet_lite0": 1})) == "1 seed"
    mid = pd.Series({**cut, "efficientnet_lite2": 2, "efficientnet_lite2_freezebn": 2})
    assert F.seeds_phrase(mid) == ("5 seeds; EfficientNet-Lite2's two arms 2 seeds; EfficientNet-Lite1's two arms "
                                   "1 seed, too few for a test, so a claim holds on a domain only where it holds on "
                                   "both EfficientNet-Lite0 and EfficientNet-Lite2")
    solo = pd.Series({"efficientnet_lite0": 5, "efficientnet_lite1": 1})
    assert F.seeds_phrase(solo).endswith("so a claim's word on a domain rests on the other networks")


def test_arms_named_calls_a_whole_network_by_its_name():
    among = ["efficientnet_lite0", "efficientnet_lite0_freezebn", "efficientnet_lite1", "efficientnet_lite1_freezebn",
             "efficientnet_lite1_freezebn_last"]
    assert W.arms_named(among[2:], among) == "EfficientNet-Lite1's three arms"
    assert W.arms_named(among[2:4], among) == "EfficientNet-Lite1, BN fine-tuned and EfficientNet-Lite1, BN frozen"
    assert W.arms_named(among[1:3], among) == "EfficientNet-Lite0, BN frozen and EfficientNet-Lite1, BN fine-tuned"
    assert W.arms_named(["efficientnet_lite1"], among) == "EfficientNet-Lite1, BN fine-tuned"


def test_verdict_rows_in_words_keep_the_analysis_and_name_arms_methods_and_domains():
    v = pd.DataFrame([{"a": "efficientnet_lite0", "mode_a": "scale+adabn", "b": "efficientnet_lite0",
                       "mode_b": "adabn", "label_a": "x", "label_b": "y", "test_set": "cellavision",
                       "word": "undetermined", "kind": "gain on the shifted domain", "n": 1, "effect": 0.1},
                      {"a": "resnet18_bn", "mode_a": "standard", "b": "efficientnet_lite2_freezebn",
                       "mode_b": "standard", "label_a": "x", "label_b": "y", "test_set": "my_lab",
                       "word": "undetermined", "kind": "gain on the shifted domain", "n": 1, "effect": 0.1}])
    named = W.in_words(v)
    assert list(named["label_a"]) == ["EfficientNet-Lite0, BN fine-tuned + rescaling + AdaBN", "ResNet-18, BatchNorm"]
    assert list(named["label_b"]) == ["EfficientNet-Lite0, BN fine-tuned + AdaBN", "EfficientNet-Lite2, BN frozen"]
    assert list(named["test_set"]) == ["CellaVision", "my_lab"] and list(named["a"])[1] == "ResNet-18, BatchNorm"
    assert named["effect"].equals(v["effect"]) and v["label_a"].eq("x").all()   # the input is left as it is
    assert comparison_sentence(named.iloc[0]).startswith(
        "EfficientNet-Lite0, BN fine-tuned + rescaling + AdaBN vs EfficientNet-Lite0, BN fine-tuned + AdaBN on "
        "CellaVision: **undetermined**")
    vetoed = pd.Series({**named.iloc[0].to_dict(), "word": "inconclusive", "word_t": "holds", "boot_lo": -0.028,
                        "boot_hi": 0.062, "n": 5, "lo": 0.01, "hi": 0.19, "p": 0.01, "p_holm": 0.04, "score_a": 0.6,
                        "score_b": 0.5, "effect_accuracy": 0.1, "effect_macro_f1": 0.1})
    assert ("CellaVision: **inconclusive** (the t-test alone: holds; the 95% bootstrap interval over test images, "
            "[-2.8, +6.2] pp, does not agree): gain +10.0 pp") in comparison_sentence(vetoed)


def test_lab_box_says_when_the_rule_keeps_the_plain_recipe(low_budget):
    plain = row_label(*F.LOW_BUDGET.rule.plain)
    study = dataclasses.replace(F.LOW_BUDGET, recommendation=lambda runs: {"recipe": plain, "supported": False,
                                                                           "words": {}, "command": "wbcbench x"})
    box = F.lab_box(study, low_budget)
    assert "No remedy beat the plain recipe, **EfficientNet-Lite0, BN fine-tuned**" in box
    assert "against the plain recipe it is" not in box


@pytest.mark.parametrize("rec, expect", [
    ({"recipe": None}, "recommends nothing"),
    ({"recipe": "efficientnet_lite0+colour", "supported": True, "words": {"lisc": "holds"}, "command": "wbcbench x"},
     "Use **EfficientNet-Lite0, BN fine-tuned, colour jitter**"),
    ({"recipe": "efficientnet_lite0+colour", "supported": False, "words": {"lisc": "inconclusive"}, "command": ""},
     "No remedy is shown to help"),
])
def test_lab_box_follows_the_recommendation(rec, expect, low_budget):
    study = dataclasses.replace(F.LOW_BUDGET, recommendation=lambda runs: rec)
    box = F.lab_box(study, low_budget)
    assert expect in box
    assert "label a sample of your own cells" in box
    assert ("```bash" in box) == bool(rec.get("command"))
    if rec["recipe"]:
        assert re.search(r"On the images it was chosen on it scores \d+% on PBC \(held-out test\) but LISC \d+%", box)
        # the in-sample choice said as such, then what the rule gained on each lab it did not see
        assert ("the same images its tests and the scores below come from" in box) == rec["supported"]
        held = F.LOW_BUDGET.held_out(low_budget)
        lisc = held.set_index("held-out domain").loc["lisc"]
        assert f"the rule gained LISC {F.fmt_gain(lisc['gain'], lisc['lo'], lisc['hi'])} pp, BCCD " in box


def test_the_converged_study_replaces_the_low_budget_one_only_when_complete(monkeypatch):
    progress = F.grid_progress(load_runs(REPO_ROOT / F.CONVERGED.runs_dir)[0], F.CONVERGED.grid)
    study, _ = F.current_study(load_runs)
    assert (study is F.CONVERGED) == (progress["finished"] >= progress["total"])
    monkeypatch.setattr(F, "grid_progress", lambda runs, grid: {"finished": 59, "total": 60})
    study, _ = F.current_study(load_runs)
    assert study is F.LOW_BUDGET
    monkeypatch.setattr(F, "grid_progress", lambda runs, grid: {"finished": 60, "total": 60})
    study, runs = F.current_study(load_runs)
    assert study is F.CONVERGED and len(runs)


def test_the_converged_study_words_its_own_runs():
    """The converged study's page, from whatever of its grid is committed: its own arms, seeds and claims."""
    runs, _ = load_runs(REPO_ROOT / F.CONVERGED.runs_dir)
    text = F.sentences(F.CONVERGED, runs)
    arms = F.arm_runs(F.CONVERGED, runs)
    n = arms["model"].nunique()
    assert len(text) == 6 and (f"the {F.NUMBERS.get(n, n)} networks" in text[0])
    assert text[4].startswith("Rescaling to the training domain's cell scale raises") and \
        "Rescaling, then AdaBN, raises the score more than AdaBN alone: " in text[4]  # V5 and V6
    per_arm = arms.groupby("model")["seed"].nunique()
    seeds = int(per_arm.max())
    assert text[5].startswith("These numbers come from the converged pretrained study") and \
        f"all of pbc:train, {seeds} seed{'s' * (seeds != 1)}" in text[5] and F.seeds_phrase(per_arm) in text[5]
    assert ("too few for a test" in text[5]) == (per_arm.min() < 2 <= seeds)
    assert "scores higher on the new domain than BN fine-tuned" in text[2]      # V1's statement, not P1's
    box = F.lab_box(F.CONVERGED, runs)
    assert "label a sample of your own cells" in box and "efficientnet_lite" not in box.split("```")[0]


def test_claim_lines_word_the_converged_study_per_domain_and_the_low_budget_one_as_its_plan_does(low_budget):
    """The second addendum has no word over domains: its claims read 'holds on ...; inconclusive on ...', each
    followed by the comparisons that hold or are contradicted; the low-budget study keeps its plan's one word."""
    runs, _ = load_runs(REPO_ROOT / F.CONVERGED.runs_dir)
    v = F.CONVERGED.verdict(runs)
    lines = F.claim_lines(F.CONVERGED, v)
    words = F.domain_words(F.CONVERGED, runs)
    assert len(lines) == len(words) == v["claim"].nunique()
    for line, (claim, row) in zip(lines, words.iterrows()):
        assert line.startswith(f"**({claim})** {row['statement']}: ")
        assert W.by_word(row[list(SHIFTED_DOMAINS)].to_dict(), emphasis=True) in line
        assert not re.search(r"\*\*(holds|inconclusive|mixed|contradicted|uninformative)\*\*", line)
        decided = v[(v["claim"] == claim) & v["word"].isin(["holds", "contradicted"])]
        assert ("The comparisons that hold or are contradicted: " in line) == bool(len(decided))
        assert all(W.domain_name(t) in line.split("contradicted: ", 1)[-1] for t in decided["test_set"])
        for b, word in zip(decided["b"], decided["word"]):   # network by network, each named once
            net = W.model_parts(b)[0]
            assert re.search(rf"{net} (holds on [^;]*, )?{word} on", line)
            assert line.split("contradicted: ", 1)[1].count(net) == 1
    old = F.LOW_BUDGET.verdict(low_budget)
    low = F.claim_lines(F.LOW_BUDGET, old)
    assert len(low) == old["claim"].nunique() and all(
        re.search(r": \*\*\w+\*\* \(overall word, one comparison holding suffices; \d+ comparisons", x) for x in low)


def test_a_domain_where_no_network_was_tested_is_said_so():
    """The plan's word stays 'inconclusive' where every network is uninformative or undetermined; the book says
    '(none tested)' beside it, and keeps a domain where a test ran but could not tell apart."""
    words = {"lisc": ["holds", "inconclusive", "undetermined"], "bccd": ["uninformative", "uninformative",
                                                                          "undetermined"],
             "jtsc": ["uninformative"] * 3, "cellavision": ["holds", "holds", "undetermined"]}
    v = pd.DataFrame([{"claim": "V1", "statement": "s", "test_set": d, "word": w}
                      for d, ws in words.items() for w in ws])
    shown = W.shown_domain_words(v).set_index("claim").loc["V1"]
    assert shown[list(SHIFTED_DOMAINS)].tolist() == ["inconclusive", W.NONE_TESTED, "uninformative", "holds"]
    assert W.by_word(shown.to_dict()) == ("holds on CellaVision; inconclusive on LISC; inconclusive (none tested) "
                                          "on BCCD; uninformative on JTSC")
