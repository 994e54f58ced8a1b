"""evaluate_all and its test-time adaptation path on real images (CellaVision, 100 images) with an
untrained ResNet-18: its BN statistics are the initial 0/1, far from any real image's, so every method
visibly changes the predictions, and each must equal its definition in bn.py."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from realdata import image_folder, real_files

from wbcbench.adapt import bn, methods
from wbcbench.adapt.methods import batch_order
from wbcbench.core.errors import WbcError
from wbcbench.core.names import ADAPT_METHODS, BN_METHODS, STANDARD, eval_dir_name, parse_adapt
from wbcbench.core.paths import REPO_ROOT
from wbcbench.core.profiles import get_profile
from wbcbench.data.cache import load_dataset
from wbcbench.engine import bn_probe, evaluate
from wbcbench.engine.evaluate import EVAL_VERSION, evaluate_all, evaluate_method
from wbcbench.models import create_model

HP = get_profile("smoke")  # 32 px crops, eval batches of 128 > 100 images: one batch per test set
TEST = "cellavision"


def config(adapt=BN_METHODS, test=(TEST,), **hp):
    return {"hparams": dict(HP, **hp), "seed": 0, "test": list(test), "adapt": list(adapt)}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("resnet18_bn", pretrained=False).eval()


@pytest.fixture(scope="module")
def data(data_root):
    return load_dataset(TEST, data_root, HP["stored_size"])


@pytest.fixture(scope="module")
def written(net, data_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, evaluate_all(net, config(), run_dir, "cpu", data_root, quiet=True)


def probabilities(run_dir, name):
    return pd.read_csv(run_dir / "eval" / name / "predictions.csv").filter(like="p_").to_numpy()


def one_batch(net, data):
    """All centre crops of the test set as one input tensor (the reference the methods are defined on)."""
    ds, images = data
    loader = evaluate.eval_loader(net, images, ds.labels, dict(HP, eval_batch_size=len(ds)), "cpu")
    (b,) = list(loader)
    return b.x


def test_every_method_is_written_with_its_record(written, data):
    run_dir, results = written
    ds, _ = data
    names = [eval_dir_name(TEST, m) for m in (STANDARD, *BN_METHODS)]
    assert sorted(results) == sorted(names) == sorted(p.name for p in (run_dir / "eval").iterdir())
    for mode, name in zip((STANDARD, *BN_METHODS), names):
        m = json.loads((run_dir / "eval" / name / "metrics.json").read_text())
        assert (m["test_set"], m["eval_mode"], m["n"], m["eval_version"]) == (TEST, mode, 100, EVAL_VERSION)
        assert m["test_manifest"] == ds.manifest_hash() and m == json.loads(json.dumps(results[name]))
        preds = pd.read_csv(run_dir / "eval" / name / "predictions.csv")
        assert list(preds["path"]) == list(ds.paths)  # dataset order, whatever order the batches had


def test_the_methods_change_the_predictions_of_an_unadapted_network(written):
    run_dir, _ = written
    standard = probabilities(run_dir, TEST)
    for mode in BN_METHODS:
        assert np.abs(probabilities(run_dir, eval_dir_name(TEST, mode)) - standard).max() > 0.05, mode


def test_adabn_evaluation_is_the_network_adapted_on_the_test_images(written, net, data):
    run_dir, _ = written
    x = one_batch(net, data)
    with torch.no_grad():
        want = torch.softmax(bn.adabn(net, [x])(x), 1).numpy()
    assert np.allclose(probabilities(run_dir, eval_dir_name(TEST, "adabn")), want, atol=1e-5)


def test_batch_stats_evaluation_normalises_with_the_test_batch(written, net, data):
    run_dir, _ = written
    x = one_batch(net, data)
    with torch.no_grad():
        want = torch.softmax(bn.test_time_bn(net)(x), 1).numpy()
    assert np.allclose(probabilities(run_dir, eval_dir_name(TEST, "batch_stats")), want, atol=1e-5)


def test_networks_without_bn_get_the_standard_evaluation_only(data_root, tmp_path):
    torch.manual_seed(0)
    gn = create_model("resnet18_gn", pretrained=False).eval()
    res = evaluate_all(gn, config(), tmp_path, "cpu", data_root, quiet=True)
    assert list(res) == [TEST] and [p.name for p in (tmp_path / "eval").iterdir()] == [TEST]


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_stain_normalisation_evaluates_the_network_on_the_normalised_images(net, data, data_root, tmp_path, method):
    """`macenko`/`reinhard`: the standard evaluation of the test images normalised to the training domain's
    reference (pbc:train, never the test set), for any network (GroupNorm too), written as its own folder."""
    from wbcbench.adapt.stain import normalise, training_reference
    ds, images = data
    ref = training_reference(method, size=HP["stored_size"], data_root=data_root)
    normed = normalise(images, ref).images
    assert not np.array_equal(normed, images)
    torch.manual_seed(0)
    gn = create_model("resnet18_gn", pretrained=False).eval()
    for model in (net, gn):
        run_dir = tmp_path / model.wbc_config["name"]
        res = evaluate_all(model, config(adapt=[method]), run_dir, "cpu", data_root, quiet=True)
        assert sorted(res) == [TEST, eval_dir_name(TEST, method)]
        loader = evaluate.eval_loader(model, normed, ds.labels, HP, "cpu")
        want = evaluate.predict(model.eval(), loader, "cpu")
        got = probabilities(run_dir, eval_dir_name(TEST, method))
        assert np.allclose(got, want, atol=1e-6)
        assert np.abs(got - probabilities(run_dir, TEST)).max() > 1e-3


def test_only_the_evaluations_asked_for_are_done(net, data_root, tmp_path):
    res = evaluate_all(net, config(), tmp_path, "cpu", data_root, quiet=True, todo={(TEST, "adabn")})
    assert list(res) == [eval_dir_name(TEST, "adabn")]
    assert [p.name for p in (tmp_path / "eval").iterdir()] == [eval_dir_name(TEST, "adabn")]
    assert evaluate_all(net, config(), None, "cpu", data_root, quiet=True).keys() == \
        {eval_dir_name(TEST, m) for m in (STANDARD, *BN_METHODS)}  # no run_dir: nothing written


def test_an_evaluation_under_an_old_folder_name_is_replaced(net, data_root, tmp_path):
    """Before issue 13 folders were named `pbc:test@adabn`; a new evaluation of the same test set and
    method replaces such a folder instead of leaving two rows for one evaluation."""
    old = tmp_path / "eval" / f"{TEST}:old@adabn"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text(json.dumps({"test_set": TEST, "eval_mode": "adabn", "test_manifest": "x"}))
    evaluate_all(net, config(adapt=["adabn"]), tmp_path, "cpu", data_root, quiet=True)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [TEST, f"{TEST}@adabn"]


def test_compare_bn_modes_uses_the_same_methods(written, net, data_root):
    run_dir, results = written
    table = bn_probe.compare_bn_modes(net, HP, [TEST], data_root)
    assert list(table["mode"]) == [STANDARD, *BN_METHODS]
    for row in table.itertuples():
        assert row.accuracy == results[eval_dir_name(TEST, row.mode)]["accuracy"], row.mode
    torch.manual_seed(0)
    gn = create_model("resnet18_gn", pretrained=False)
    assert list(bn_probe.compare_bn_modes(gn, HP, [TEST], data_root)["mode"]) == [STANDARD]


def test_domain_stat_gaps_one_row_per_layer_and_domain(net, data_root):
    gaps = bn_probe.domain_stat_gaps(net, HP, [TEST, "jtsc"], data_root)
    layers = len(bn.bn_layers(net))
    assert len(gaps) == 2 * layers and list(gaps["layer_index"][:layers]) == list(range(layers))
    assert (gaps["gap"] > 0).all() and (gaps["var_ratio"] > 0).all()


# ------------------------------------------------------------------------------------------ names
def test_parse_adapt():
    assert BN_METHODS == ("adabn", "batch_stats", "tent")
    assert ADAPT_METHODS == BN_METHODS + ("macenko", "reinhard", "macenko_domain", "reinhard_domain", "scale",
                                          "scale+adabn")
    assert parse_adapt("adabn,macenko") == ["adabn", "macenko"]
    assert parse_adapt("scale+tent, macenko_domain+scale+adabn") == ["scale+tent", "macenko_domain+scale+adabn"]
    for bad in ("adabn+scale", "adabn+tent", "scale+scale", "scale+adaBN"):   # a BN method last, once; no repeats
        with pytest.raises(WbcError, match="test-time method"):
            parse_adapt(bad)
    assert parse_adapt("adabn, batch_stats,adabn,") == ["adabn", "batch_stats"]
    assert parse_adapt("tent") == ["tent"]
    assert parse_adapt(["batch_stats"]) == ["batch_stats"]
    assert parse_adapt(None) == parse_adapt("") == parse_adapt(()) == []
    with pytest.raises(WbcError, match=r"unknown test-time method 'adaBN'.*adabn"):
        parse_adapt("adaBN")
    with pytest.raises(WbcError, match=r"test-time methods True must be names"):
        parse_adapt(True)  # the old `adabn` flag's value is not a method list


def _portable_name(got: str) -> bool:
    return not set(got) & set('<>:"/\\|?*') and not got.endswith((".", " ")) and got not in (".", "..")


@pytest.mark.parametrize("name, mode, want", [
    ("pbc:test", STANDARD, "pbc_test"), ("pbc:test", "adabn", "pbc_test@adabn"),
    ("raabin:testA", "batch_stats", "raabin_testA@batch_stats"), ("lisc-paper", STANDARD, "lisc-paper"),
    ("a<b>c|d?e*f\"g", STANDARD, "a_b_c_d_e_f_g"),
    ("/data/my cells/", STANDARD, r"my_cells-[0-9a-f]{8}"), ("/data/my cells", "tent", r"my_cells-[0-9a-f]{8}@tent"),
    ("..", STANDARD, r"[A-Za-z0-9_.+-]+-[0-9a-f]{8}"),
])
def test_eval_folder_names_are_portable(name, mode, want):
    got = eval_dir_name(name, mode)
    assert re.fullmatch(want, got), got
    assert _portable_name(got)


def test_committed_evaluations_keep_their_folder_names():
    """Every committed evaluation's folder is the name its metrics.json's test set and method give."""
    found = sorted((REPO_ROOT / "results").glob("*/*/eval/*/metrics.json"))
    assert found
    for p in found:
        m = json.loads(p.read_text())
        assert eval_dir_name(m["test_set"], m["eval_mode"]) == p.parent.name, p


def test_an_image_folders_evaluation_is_named_without_its_absolute_path(tmp_path, monkeypatch):
    """An ImageFolder test set's evaluation folder was its absolute path with '_' for '/': a committed run
    would hold where one machine kept its images. Now: the folder's name and a hash of where it is, so two
    folders of the same name stay apart, and the same folder named two ways is one evaluation."""
    a, b = tmp_path / "site-a" / "cells", tmp_path / "site-b" / "cells"
    for d in (a, b):
        d.mkdir(parents=True)
    name_a, name_b = eval_dir_name(str(a)), eval_dir_name(str(b))
    assert name_a != name_b and name_a.startswith("cells-") and name_b.startswith("cells-")
    for got in (name_a, name_b, eval_dir_name(str(a), "adabn")):
        assert _portable_name(got) and "site" not in got and tmp_path.name not in got, got
    monkeypatch.chdir(tmp_path / "site-a")
    assert eval_dir_name("./cells") == eval_dir_name("cells/") == eval_dir_name(f"{a}/") == name_a
    assert eval_dir_name("../site-b/cells") == name_b


def test_two_image_folders_of_the_same_name_are_evaluated_apart(net, data_root, tmp_path):
    a, b = (image_folder(tmp_path / site / "cells", {"Neutrophil": real_files(data_root, TEST, "Neutrophil", 2)})
            for site in ("site-a", "site-b"))
    run_dir = tmp_path / "run"
    results = evaluate_all(net, config(adapt=(), test=(str(a), str(b))), run_dir, "cpu", data_root, quiet=True)
    folders = sorted(p.name for p in (run_dir / "eval").iterdir())
    assert folders == sorted(results) == sorted([eval_dir_name(str(a)), eval_dir_name(str(b))])
    assert len(folders) == 2 and all(f.startswith("cells-") and str(tmp_path.name) not in f for f in folders)


def test_two_test_sets_that_would_share_a_folder_are_refused(net, data_root, tmp_path):
    with pytest.raises(WbcError, match="share the folder eval/pbc_test"):
        evaluate_all(net, config(test=("pbc:test", "pbc_test")), tmp_path, "cpu", data_root, quiet=True)
    assert not (tmp_path / "eval").exists()


# ------------------------------------------------------------------- order and batch size (issue 10)
SMALL_BATCHES = dict(HP, eval_batch_size=16)  # 7 batches of a class-sorted 100-image set


def probs_of(metrics_preds):
    return metrics_preds[1].filter(like="p_").to_numpy()


def reordered(ds, images, perm):
    """The same test set with its images in another order (a dataset object and its pixels)."""
    return ds.subset(perm, name=f"{ds.name}-reordered"), np.asarray(images)[perm]


def test_adabn_is_exact_whatever_the_batches(net, data, monkeypatch):
    """Layer-by-layer accumulation over small batches (forced here) gives the one-pass reference: the
    network adapted on all 100 images as one batch in train mode."""
    ds, images = data
    x = one_batch(net, data)
    with torch.no_grad():
        want = torch.softmax(bn.adabn(net, [x])(x), 1).numpy()
    monkeypatch.setattr(methods, "ONE_PASS_VALUES", 0)
    got = probs_of(evaluate_method(net, "adabn", ds, images, SMALL_BATCHES, "cpu"))
    assert np.allclose(got, want, atol=1e-5)


def test_adabn_predictions_do_not_depend_on_the_image_order(net, data, monkeypatch):
    """The dataset is sorted by class. Today's test set in its order and shuffled give the same
    predictions for every image (before issue 10 the class-sorted batches gave other statistics)."""
    ds, images = data
    monkeypatch.setattr(methods, "ONE_PASS_VALUES", 0)
    perm = np.random.default_rng(5).permutation(len(ds))
    a = probs_of(evaluate_method(net, "adabn", ds, images, SMALL_BATCHES, "cpu"))
    b = probs_of(evaluate_method(net, "adabn", *reordered(ds, images, perm), SMALL_BATCHES, "cpu"))
    assert np.array_equal(a[perm].argmax(1), b.argmax(1)) and np.allclose(a[perm], b, atol=1e-6)


def test_batch_dependent_methods_see_seeded_shuffled_batches(net, data):
    """batch_stats: each batch of the seeded order (batch_order) normalised with its own statistics,
    predictions written back in dataset order; not the class-sorted dataset order."""
    ds, images = data
    order = batch_order(len(ds), seed=3)
    assert sorted(order) == list(range(len(ds))) and not np.array_equal(order, np.arange(len(ds)))
    assert np.array_equal(order, batch_order(len(ds), seed=3)) and not np.array_equal(order, batch_order(len(ds), 4))
    loader = evaluate.eval_loader(net, images, ds.labels, SMALL_BATCHES, "cpu", order)
    tbn, want = bn.test_time_bn(net), np.zeros((len(ds), 5))
    with torch.no_grad():
        for b in loader:
            want[b.index] = torch.softmax(tbn(b.x), 1).numpy()
    got = probs_of(evaluate_method(net, "batch_stats", ds, images, SMALL_BATCHES, "cpu", seed=3))
    assert np.allclose(got, want, atol=1e-6)
    sorted_batches = probs_of(evaluate.evaluate_model(tbn, ds, images, SMALL_BATCHES, "cpu"))
    assert not np.allclose(got, sorted_batches, atol=1e-3)


def test_tent_evaluation_is_online_deterministic_and_seeded(net, data):
    ds, images = data
    got = probs_of(evaluate_method(net, "tent", ds, images, SMALL_BATCHES, "cpu", seed=3))
    again = probs_of(evaluate_method(net, "tent", ds, images, SMALL_BATCHES, "cpu", seed=3))
    other = probs_of(evaluate_method(net, "tent", ds, images, SMALL_BATCHES, "cpu", seed=4))
    assert np.array_equal(got, again) and not np.allclose(got, other, atol=1e-4)
    # the first batch of the seeded order is predicted before any update: batch statistics, trained affine
    first = batch_order(len(ds), 3)[:16]
    with torch.no_grad():
        x = next(iter(evaluate.eval_loader(net, images, ds.labels, SMALL_BATCHES, "cpu", first))).x
        want = torch.softmax(bn.test_time_bn(net)(x), 1).numpy()
    assert np.allclose(got[first], want, atol=1e-5)
    # later batches are predicted by the adapted network, which batch statistics alone do not give
    bs = probs_of(evaluate_method(net, "batch_stats", ds, images, SMALL_BATCHES, "cpu", seed=3))
    rest = batch_order(len(ds), 3)[16:]
    assert not np.allclose(got[rest], bs[rest], atol=1e-4)
