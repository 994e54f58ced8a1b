"""The benchmark as others use it: `evaluate_model` on a network outside the registry, `score` / `wbcbench
score` on predictions made anywhere, and the book's arms as reference rows in the same table."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import wbcbench
from wbcbench import cli
from wbcbench.analysis import cpu_study
from wbcbench.analysis.verdict import grid_runs
from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.core.metrics import compute_metrics
from wbcbench.core.names import BENCHMARK_DOMAINS, STANDARD
from wbcbench.core.profiles import get_profile
from wbcbench.data.datasets import get_dataset
from wbcbench.data.duplicates import scored
from wbcbench.engine import scoring
from wbcbench.engine.evaluate import evaluate_all
from wbcbench.models import create_model
from wbcbench.report import plots
from wbcbench.report.reference import STUDIES, beside_chart, reference_rows
from wbcbench.report.tables import summary_table
from wbcbench.runs.collect import load_runs

SMOKE = get_profile("smoke")  # 32 px crops of 40 px images: the size other tests cache the domains at
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
NEUTROPHIL = CLASSES.index("Neutrophil")


def tiny(bn: bool = True, affine: bool = True) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm2d(8, affine=affine)] if bn else []
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), *norm, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, len(CLASSES)))


@pytest.fixture
def folder(tmp_path):
    """An ImageFolder of 12 small images in three classes (no real data needed)."""
    rng = np.random.default_rng(0)
    for cls, k in (("Lymphocyte", 5), ("Neutrophil", 5), ("Basophil", 2)):
        (tmp_path / "cells" / cls).mkdir(parents=True)
        for i in range(k):
            pixels = rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "cells" / cls / f"{i}.png")
    return tmp_path / "cells"


# ---------------------------------------------------------------------------------------------------------
# evaluate_model


@pytest.mark.needs_data
def test_a_network_outside_the_registry_on_the_five_domains(data_root):
    net = tiny()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    table = wbcbench.evaluate_model(net, image_size=32, resize=40, mean=MEAN, std=STD, adapt="adabn,tent",
                                    name="tiny", data_root=data_root)
    assert list(table.columns) == list(scoring.COLUMNS)
    assert list(table["domain"].unique()) == list(BENCHMARK_DOMAINS)
    assert list(table["label"][:3]) == ["tiny", "tiny + AdaBN", "tiny + TENT"] and len(table) == 15
    for d, g in table.groupby("domain"):
        ds = get_dataset(d, data_root)
        labels = ds.labels[scored(d, ds.paths, data_root)]      # duplicates of training images left out
        counts = np.bincount(labels, minlength=len(CLASSES))
        assert (g["n"] == len(labels)).all() and g["complete"].all()
        assert (g["majority_baseline"] == counts.max() / len(labels)).all()
    assert table[["accuracy", "balanced_accuracy_min5", "macro_f1"]].stack().between(0, 1).all()
    assert not table.loc[table["method"] == "adabn", "accuracy"].equals(
        table.loc[table["method"] == STANDARD, "accuracy"].reset_index(drop=True))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the adapted copies only"
    assert net.training, "the model's mode is restored"
    both = pd.concat([reference_rows("cpu"), table], ignore_index=True)
    assert list(both.columns) == list(scoring.COLUMNS) and both["study"].isna().sum() == len(table)
    assert plots.to_svg(beside_chart(both)).lstrip().startswith("<svg")


def test_beside_chart_panels_draw_their_own_domain_and_chance():
    """Every layer reads the facet's data (a layer with its own data would draw every domain in every panel),
    and the dashed line is the chance level it is given, not the accuracy majority baseline."""
    rows = reference_rows("cpu-pretrained")
    rows = rows[rows["model"] == rows["model"].iloc[0]]
    spec = beside_chart(rows, chance={"lisc": 0.2, "bccd": 0.25}).to_dict()
    layers = spec["spec"]["layer"]
    assert "data" in spec and all("data" not in layer for layer in layers)
    assert layers[1]["encoding"]["x"]["field"] == "chance"
    values = {(r["domain"], r["chance"]) for r in spec["datasets"][spec["data"]["name"]] if r["chance"] is not None}
    assert values == {("lisc", 0.2), ("bccd", 0.25)}
    assert len(beside_chart(rows).to_dict()["spec"]["layer"]) == 1      # no chance given: no line
    svg = plots.to_svg(beside_chart(rows, chance={"lisc": 0.2}))
    assert float(re.search(r'width="([\d.]+)"', svg).group(1)) <= plots.PAGE_WIDTH


@pytest.mark.needs_data
def test_a_registry_network_scores_as_its_own_evaluation(data_root):
    """The same network through evaluate_model (plain arguments) and evaluate_all (a run's config)."""
    torch.manual_seed(0)
    net = create_model("resnet18_bn", pretrained=False).eval()
    cfg = net.wbc_config
    table = wbcbench.evaluate_model(net, image_size=SMOKE["crop_size"], resize=SMOKE["stored_size"],
                                    mean=cfg["mean"], std=cfg["std"], batch_size=SMOKE["eval_batch_size"],
                                    domains=["cellavision"], adapt=["adabn", "tent"], data_root=data_root)
    ours = evaluate_all(net, {"hparams": SMOKE, "seed": 0, "test": ["cellavision"], "adapt": ["adabn", "tent"]},
                        None, torch.device("cpu"), data_root, quiet=True)
    assert len(table) == len(ours) == 3
    for _, r in table.iterrows():
        m = ours["cellavision" if r["method"] == STANDARD else f"cellavision@{r['method']}"]
        flat = scoring.flat_metrics(m)
        assert all(r[k] == flat[k] for k in scoring.METRICS if flat[k] is not None), r["label"]


def test_an_image_folder_is_a_domain_and_a_sample_is_not_complete(folder):
    table = wbcbench.evaluate_model(tiny(), image_size=16, mean=MEAN, std=STD, domains=[str(folder)])
    assert table[["domain", "n", "complete", "method"]].values.tolist() == [[str(folder), 12, True, STANDARD]]
    assert np.isnan(table["recall_Eosinophil"].iat[0]) and table["majority_baseline"].iat[0] == 5 / 12
    sample = wbcbench.evaluate_model(tiny(), image_size=16, mean=MEAN, std=STD, domains=[str(folder)], per_class=2)
    assert sample[["n", "complete"]].values.tolist() == [[6, False]]


def test_adabn_or_tent_without_batchnorm_is_a_clear_error():
    with pytest.raises(WbcError, match="no BatchNorm layers to adapt"):
        wbcbench.evaluate_model(tiny(bn=False), image_size=32, mean=MEAN, std=STD, adapt=["adabn"])
    with pytest.raises(WbcError, match="with affine parameters"):
        wbcbench.evaluate_model(tiny(affine=False), image_size=32, mean=MEAN, std=STD, adapt="tent")


@pytest.mark.parametrize("kwargs, match", [
    (dict(mean=(0.5, 0.5)), "mean=.*three finite numbers"),
    (dict(std=(0.5, 0, 0.5)), "std=.*each > 0"),
    (dict(image_size=0), "image_size=0"),
    (dict(resize=16), "resize=16 is smaller than image_size=32"),
    (dict(adapt="adabnn"), "unknown test-time method 'adabnn'"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = {"image_size": 32, "mean": MEAN, "std": STD, **kwargs}
    with pytest.raises(WbcError, match=match):
        wbcbench.evaluate_model(tiny(), **args)


def test_a_model_without_five_logits_is_refused_before_any_data_is_read():
    with pytest.raises(WbcError, match=r"to \(2, 1000\); the benchmark needs \(N, 5\) logits in the order Basophil"):
        wbcbench.evaluate_model(nn.Sequential(nn.Flatten(), nn.LazyLinear(1000)), image_size=8, mean=MEAN, std=STD)
    with pytest.raises(WbcError, match="fails on a \\(2, 3, 32, 32\\) float batch: RuntimeError"):
        wbcbench.evaluate_model(nn.Linear(7, 5), image_size=32, mean=MEAN, std=STD)


# ---------------------------------------------------------------------------------------------------------
# score


def predictions(data_root, domains=BENCHMARK_DOMAINS, answer="Neutrophil") -> pd.DataFrame:
    """Every image of `domains` answered with `answer` (a class, or a function of the dataset)."""
    rows = []
    for d in domains:
        ds = get_dataset(d, data_root)
        cls = answer(ds) if callable(answer) else answer
        rows += [{"domain": d, "path": p, "prediction": cls} for p in ds.paths]
    return pd.DataFrame(rows)


@pytest.mark.needs_data
def test_a_constant_answer_scores_exactly_the_majority_baseline(data_root, tmp_path, capsys):
    csv, out = tmp_path / "always.csv", tmp_path / "table.csv"
    predictions(data_root).to_csv(csv, index=False)
    assert cli.main(["--data-root", str(data_root), "score", str(csv), "--out", str(out)]) == 0
    table = pd.read_csv(out, float_precision="round_trip")
    assert list(table.columns) == list(scoring.COLUMNS) and list(table["domain"]) == list(BENCHMARK_DOMAINS)
    assert "pbc:test" in capsys.readouterr().out
    for _, r in table.iterrows():
        ds = get_dataset(r["domain"], data_root)
        labels = ds.labels[scored(r["domain"], ds.paths, data_root)]   # what every evaluation counts
        counts = np.bincount(labels, minlength=len(CLASSES))
        assert r["accuracy"] == counts[NEUTROPHIL] / len(labels) and r["recall_Neutrophil"] == 1
        assert r["balanced_accuracy_min5"] == 1 / (counts >= 5).sum()
        # always "Neutrophil" is the majority baseline exactly where neutrophils are the largest class
        assert (r["accuracy"] == r["majority_baseline"]) == (counts.argmax() == NEUTROPHIL)
        assert np.isnan(r["nll"]) and r["complete"]
    majority = wbcbench.score(predictions(data_root, answer=lambda ds: CLASSES[np.bincount(ds.labels).argmax()]),
                              data_root=data_root)
    assert (majority["accuracy"] == majority["majority_baseline"]).all()


@pytest.mark.needs_data
@pytest.mark.parametrize("spoil, culprit", [
    (lambda df: df.assign(path=df["path"].where(df.index != 3, "Neutrophil/not-there.jpg")),
     "not an image of their domain .*line 5: cellavision Neutrophil/not-there.jpg"),
    (lambda df: df.assign(prediction=df["prediction"].where(df.index != 7, "Neutrofil")),
     "unknown class .*line 9: 'Neutrofil'"),
    (lambda df: pd.concat([df, df.iloc[[10]]]),
     "predicting an image that an earlier row predicts: line 102: cellavision"),
    (lambda df: df.iloc[:-3], "images not predicted .*cellavision: 3 of 100 images missing"),
])
def test_bad_predictions_are_refused_with_status_2(data_root, tmp_path, capsys, spoil, culprit):
    csv, out = tmp_path / "p.csv", tmp_path / "table.csv"
    spoil(predictions(data_root, ["cellavision"])).to_csv(csv, index=False)
    assert cli.main(["--data-root", str(data_root), "score", str(csv), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wbcbench: error: cannot score these predictions") and err.count("\n") == 1, err
    assert re.search(culprit, err), err
    assert not out.exists()


@pytest.mark.needs_data
def test_score_in_a_subprocess_names_every_problem_in_one_line_without_traceback(data_root, tmp_path):
    df = predictions(data_root, ["cellavision", "lisc"])
    df.loc[2, "path"], df.loc[4, "prediction"] = "nowhere.png", "Blast"
    pd.concat([df, df.iloc[[120, 130]]]).to_csv(tmp_path / "bad.csv", index=False)
    p = subprocess.run([sys.executable, "-m", "wbcbench.cli", "--data-root", str(data_root), "score",
                        str(tmp_path / "bad.csv")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stdout == ""
    assert p.stderr.count("\n") == 1
    for part in ("1 row(s) naming a path", "line 4: cellavision nowhere.png", "1 row(s) predicting an unknown class",
                 "line 6: 'Blast'", "2 row(s) predicting an image that an earlier row predicts", "line 412: lisc",
                 "cellavision: 1 of 100 images missing"):
        assert part in p.stderr, (part, p.stderr)


@pytest.mark.needs_data
def test_partial_scores_what_there_is_and_says_so(data_root, capsys, tmp_path):
    df = predictions(data_root, ["cellavision", "bccd"]).iloc[:-51]
    table = wbcbench.score(df, data_root=data_root, partial=True)
    assert table[["domain", "n", "complete"]].values.tolist() == [["bccd", 300, False], ["cellavision", 100, True]]
    df.to_csv(tmp_path / "p.csv", index=False)
    assert cli.main(["score", str(tmp_path / "p.csv"), "--partial", "--data-root", str(data_root)]) == 0
    assert "part of their images" in capsys.readouterr().out


def test_probabilities_give_nll_and_are_checked(folder):
    ds = get_dataset(folder)
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(len(CLASSES)), len(ds))
    df = pd.DataFrame({"domain": str(folder), "path": list(ds.paths), "prediction": [CLASSES[i] for i in p.argmax(1)],
                       **{f"p_{c}": p[:, i] for i, c in enumerate(CLASSES)}})
    table = wbcbench.score(df.sample(frac=1, random_state=0), name="mine")
    want = compute_metrics(ds.labels, p)
    assert table["label"].tolist() == ["mine"] and table["accuracy"].iat[0] == want["accuracy"]
    assert table["nll"].iat[0] == pytest.approx(want["nll"]) and table["ece"].iat[0] == pytest.approx(want["ece"])
    wrong = df.assign(prediction=[CLASSES[i] for i in p.argmin(1)])
    with pytest.raises(WbcError, match="12 row\\(s\\) whose prediction is not their most probable class: row 0"):
        scoring.score(wrong)
    with pytest.raises(WbcError, match="not probabilities summing to 1"):
        scoring.score(df.assign(p_Basophil=df["p_Basophil"] + 0.1))
    with pytest.raises(WbcError, match="but not p_Neutrophil"):
        scoring.score(df.drop(columns="p_Neutrophil"))
    with pytest.raises(WbcError, match="lack column\\(s\\) prediction"):
        scoring.score(df.drop(columns="prediction"))


def test_paths_are_matched_as_the_dataset_lists_them(folder):
    ds = get_dataset(folder)
    variants = ["./" + ds.paths[0], ds.paths[1].replace("/", "\\"), str(folder / ds.paths[2]), *ds.paths[3:]]
    table = scoring.score(pd.DataFrame({"domain": str(folder), "path": variants, "prediction": "lymphocytes"}))
    assert table["n"].iat[0] == 12 and table["recall_Lymphocyte"].iat[0] == 1


def test_an_unknown_domain_or_an_unreadable_file_is_one_clear_message(tmp_path, capsys):
    (tmp_path / "p.csv").write_text("domain,path,prediction\nnot-a-domain,a.png,Neutrophil\n")
    assert cli.main(["score", str(tmp_path / "p.csv")]) == 2
    assert "domain 'not-a-domain': unknown dataset" in capsys.readouterr().err
    assert cli.main(["score", str(tmp_path / "missing.csv")]) == 2
    assert "predictions file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# reference rows


@pytest.mark.parametrize("study", list(STUDIES))
def test_reference_rows_equal_the_books_tables(study):
    folder, grid = STUDIES[study]
    runs = grid_runs(load_runs(folder)[0], grid)
    book = summary_table(runs, metrics=cpu_study.STUDY_METRICS)
    ref = reference_rows(study)
    assert list(ref.columns) == list(scoring.COLUMNS) and (ref["study"] == study).all()
    assert len(ref) == len(book) > 0
    merged = ref.merge(book, left_on=["model", "domain", "method"], right_on=["model", "test_set", "eval_mode"],
                       validate="one_to_one")
    assert len(merged) == len(book)
    for m in cpu_study.STUDY_METRICS:
        assert np.allclose(merged[m], merged[f"{m}_mean"], rtol=1e-12, atol=0), m
    assert (merged["seeds_x"] == merged["seeds_y"]).all() and (merged["label_x"] == merged["label_y"]).all()
    assert np.array_equal(merged["majority_baseline_x"], merged["majority_baseline_y"])


def test_reference_rows_of_every_study_and_a_wrong_name():
    both = reference_rows()
    assert list(dict.fromkeys(both["study"])) == list(STUDIES)
    for _, g in both.groupby("study"):
        assert list(dict.fromkeys(g["domain"])) == list(BENCHMARK_DOMAINS)
    with pytest.raises(WbcError, match="unknown study 'cpu-pretrain' \\(did you mean 'cpu-pretrained'\\?\\)"):
        reference_rows("cpu-pretrain")


def test_scoring_and_reference_rows_need_no_torch():
    code = ("import sys, wbcbench.engine.scoring, wbcbench.report.reference; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
