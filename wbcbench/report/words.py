"""How the book's prose names the studies' arms, recipes, domains and words, in one place, so that the findings
page and every chapter call the same thing by the same name."""
from __future__ import annotations

from wbcbench.analysis.pretrained_v2 import DOMAIN_WORDS, domain_words
from wbcbench.core.names import DOMAIN_NAMES, SHIFTED_DOMAINS, STANDARD, method_label
from wbcbench.models.catalog import MODELS

AUGMENTS = {"colour": "colour jitter", "hed": "HED stain jitter", "grayscale": "grayscale",
            "scale": "scale augmentation", "colour+scale": "colour jitter and scale augmentation"}


# the catalog's normalisation labels as prose says them ('' for a name whose norm is an option)
NORM_WORDS = {"none": "no normalisation", "LayerNorm (GroupNorm 1)": "LayerNorm", "per norm=": ""}

NUMBERS = dict(enumerate(("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                          "eleven", "twelve")))


def domain_name(domain: str) -> str:
    """'cellavision' -> 'CellaVision'; a test set the book does not bundle keeps its name."""
    return DOMAIN_NAMES.get(domain, domain)


NONE_TESTED = "inconclusive (none tested)"


def shown_domain_words(v):
    """pretrained_v2.domain_words as the book shows them: the plan's word, with 'inconclusive' said as
    'inconclusive (none tested)' where no network's comparison was tested there (each uninformative or
    undetermined), so that a reader does not take it for a test that could not tell."""
    shown = domain_words(v)
    for i, claim in zip(shown.index, shown["claim"]):
        for d in SHIFTED_DOMAINS:
            mine = v.loc[(v["claim"] == claim) & (v["test_set"] == d), "word"]
            if shown.at[i, d] == "inconclusive" and len(mine) and mine.isin(["uninformative", "undetermined"]).all():
                shown.at[i, d] = NONE_TESTED
    return shown


def model_parts(model: str) -> tuple[str, str, str] | None:
    """A registry name's (family, how its normalisation is trained, what sets it apart) in words, from the model
    catalog: 'efficientnet_lite0_freezebn_last' -> ('EfficientNet-Lite0', 'frozen BN', 'last stages trained');
    'resnet18_gn' -> ('ResNet-18', 'GroupNorm', ''). BN of a network pretrained by default is 'fine-tuned'.
    None for a name outside the catalog."""
    cfg = MODELS.get(model)
    if cfg is None:
        return None
    if cfg.freeze_bn:
        norm = "frozen BN" if cfg.train_last_convs else "BN frozen"
    elif cfg.normalisation == "BatchNorm" and cfg.pretrained:
        norm = "BN fine-tuned"
    else:
        norm = NORM_WORDS.get(cfg.normalisation, cfg.normalisation)
    return cfg.family, norm, cfg.variant


def arm_parts(variant: str) -> tuple[str, str, str] | None:
    """'efficientnet_lite0_freezebn+colour' -> ('EfficientNet-Lite0', 'BN frozen', 'colour jitter'): the network,
    its training, its augmentation; None for a network outside the catalog."""
    model, _, augment = variant.partition("+")
    parts = model_parts(model)
    if parts is None:
        return None
    family, norm, what = parts
    return family, ", ".join(p for p in (norm, what) if p), AUGMENTS.get(augment, augment)


def arm_name(variant: str) -> str:
    """Any trained network in words: 'efficientnet_lite1_freezebn' -> 'EfficientNet-Lite1, BN frozen';
    'efficientnet_lite0+colour' -> 'EfficientNet-Lite0, BN fine-tuned, colour jitter'; 'resnet18_gn' ->
    'ResNet-18, GroupNorm'. A network outside the catalog keeps its id."""
    model, _, augment = variant.partition("+")
    parts = arm_parts(variant) or (model, AUGMENTS.get(augment, augment))
    return ", ".join(p for p in parts if p)


def label_name(label: str) -> str:
    """A table row's label (core.names.row_label: 'efficientnet_lite0+hed + AdaBN') in words: 'EfficientNet-Lite0,
    BN fine-tuned, HED stain jitter + AdaBN'. A label that names no network ('chance (1/classes)') is kept."""
    head, sep, rest = str(label).partition(" + ")
    return arm_name(head) + sep + rest


def rows_in_words(table):
    """A table whose rows are named by label (tables.wide_table, a recipe table) with the networks in words (a
    copy)."""
    out = table.copy()
    out.index = [label_name(x) for x in out.index]
    out.index.name = table.index.name
    return out


def _family(arm: str) -> str:
    """An arm's network in words ('EfficientNet-Lite1'), or the arm itself outside the catalog."""
    return (arm_parts(arm) or (arm,))[0]


def arms_named(arms, among) -> str:
    """Arms in words, each network whose arms (of all the arms `among`) are all there as one: "EfficientNet-Lite1's
    three arms"; the other arms by name; listed."""
    arms, parts = list(arms), []
    for fam in dict.fromkeys(_family(a) for a in arms):
        mine = [a for a in arms if _family(a) == fam]
        if len(mine) > 1 and set(mine) == {a for a in among if _family(a) == fam}:
            parts.append(f"{fam}'s {NUMBERS.get(len(mine), len(mine))} arms")
        else:
            parts += [arm_name(a) for a in mine]
    return listed(parts, "; ")


def holds_only_where(cut, among) -> str:
    """What leaving the `cut` arms' networks untested does to the per-domain rule (a claim holds on a domain
    when at least two of its three networks' comparisons hold): 'a claim holds on a domain only where it holds
    on both EfficientNet-Lite0 and EfficientNet-Lite2'."""
    left = list(dict.fromkeys(_family(a) for a in among if _family(a) not in {_family(c) for c in cut}))
    if len(left) == 2:
        return f"a claim holds on a domain only where it holds on both {left[0]} and {left[1]}"
    return "a claim's word on a domain rests on the other networks"


def evaluated_name(model: str, mode: str) -> str:
    """An arm evaluated with a test-time method in words: 'EfficientNet-Lite0, BN fine-tuned + AdaBN'."""
    return arm_name(model) + ("" if mode == STANDARD else f" + {method_label(mode)}")


def in_words(verdict):
    """verdict_table rows whose arms (a, b, label_a, label_b) and domain (test_set) are named in words, for the
    sentences of wbcbench.report.verdict_text; the analysis keeps the ids."""
    out = verdict.copy()
    for side in ("a", "b"):
        out[f"label_{side}"] = [evaluated_name(m, e) for m, e in zip(verdict[side], verdict[f"mode_{side}"])]
        out[side] = [arm_name(m) for m in verdict[side]]
    out["test_set"] = [domain_name(t) for t in verdict["test_set"]]
    return out


def recipe_name(rule, label: str) -> str:
    """A recipe of a recipes.RecipeRule, by its row label, in words: 'EfficientNet-Lite0, BN fine-tuned, then
    AdaBN on the lab's images'."""
    arm, mode = rule.by_label[label]
    return arm_name(arm) + ("" if mode == STANDARD else f", then {method_label(mode)} on the lab's images")


def listed(items, sep: str = ", ", last: str = "and") -> str:
    """'a, b and c' (names that hold commas themselves: sep='; '; alternatives: last='or')."""
    items = list(items)
    return sep.join(items[:-1]) + f" {last} {items[-1]}" if len(items) > 1 else "".join(items)


def by_word(word_of: dict, emphasis: bool = False, domains=SHIFTED_DOMAINS, notes: dict | None = None) -> str:
    """{shifted domain: word} (a dict, or a row of pretrained_v2.domain_words) as 'holds on LISC and JTSC;
    inconclusive on BCCD', words in DOMAIN_WORDS order, `domains` in the benchmark's order; a domain without
    a word is undetermined. `notes`: word -> what to say after its domains."""
    groups: dict[str, list[str]] = {}
    for d in domains:
        groups.setdefault(word_of.get(d, "undetermined"), []).append(domain_name(d))
    order = sorted(groups, key=lambda w: (DOMAIN_WORDS.index(w.split(" (")[0]) if w.split(" (")[0] in DOMAIN_WORDS
                                          else len(DOMAIN_WORDS), w))
    notes = notes or {}
    return "; ".join(f"{f'*{w}*' if emphasis else w} on {listed(groups[w])}{notes.get(w, '')}" for w in order)
