"""The trainer on real PBC images: it learns, it is deterministic, it resumes exactly, a finished run gains
evaluations without being retrained, its record is portable, and bad input ends with one clear message."""
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from wbcbench.core.errors import WbcError
from wbcbench.engine.train import build_config, run, run_dir_for, run_state
from wbcbench.runs import rundir
from wbcbench.runs.collect import collect

ARGS = dict(model="resnet18_bn", profile="smoke", seed=3, train_set="pbc:train", test_sets=["pbc:test"],
            epochs=3, train_subset_per_class=64, quiet=True)
SMALL = dict(model="resnet18_bn", profile="smoke", seed=1, train_set="cellavision", test_sets=["cellavision"],
             epochs=1, quiet=True)  # seconds: 100 images, one epoch
CLI = [sys.executable, "-m", "wbcbench.cli"]
ABSOLUTE = re.compile(r"""(^|[\s"'=(,])(/(work|root|home|tmp|Users|usr|var|mnt|opt)/|[A-Za-z]:\\)""")


def cli_args(out, *extra):
    return [*CLI, "train", "--model", "resnet18_bn", "--profile", "smoke", "--seed", "3", "--test", "pbc:test",
            "--epochs", "3", "--train-subset-per-class", "64", "--quiet", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def run_a(data_root, tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("runs-a"), **ARGS)


@pytest.fixture(scope="module")
def small(data_root, tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("runs-small"), data_root=data_root, **SMALL)


def metrics(run_dir, name="pbc_test"):
    return json.loads((Path(run_dir) / "eval" / name / "metrics.json").read_text())


def test_learns_and_writes_a_complete_run(run_a):
    log = pd.read_csv(run_a / "log.csv")
    assert list(log.epoch) == [1, 2, 3]
    assert log.train_loss.iloc[-1] < log.train_loss.iloc[0]
    m = metrics(run_a)
    assert m["n"] == 3099 - len(m["left_out"]) == 3094 and m["test_set"] == "pbc:test" and m["eval_mode"] == "standard"
    assert m["accuracy"] > m["majority_baseline"] + 0.10, m
    cfg = json.loads((run_a / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["hparams"]["epochs"] == 3 and len(cfg["train_manifest"]) >= 16
    assert cfg["code"]["commit"] and cfg["environment"]["versions"]["torch"]
    assert cfg["identity"] == rundir.IDENTITY and cfg["adapt"] == [] and cfg["adaptable_bn"] is True
    assert cfg["train_version"] == rundir.TRAIN_VERSION
    assert cfg["environment"]["cpu_capability"] and "cpu" in cfg["environment"]
    preds = pd.read_csv(run_a / "eval" / "pbc_test" / "predictions.csv")
    assert len(preds) == 3099
    assert preds.filter(like="p_").sum(axis=1).sub(1).abs().max() < 1e-4
    assert (run_a / "done").is_file() and (run_a / "model.pt").is_file()
    assert not (run_a / "checkpoint.pt").exists()
    assert not list(run_a.rglob("*.tmp"))
    assert [p.name for p in (run_a / "eval").iterdir()] == ["pbc_test"]  # no ':' in folder names (Windows)


def test_run_record_holds_no_absolute_path(run_a, data_root, tmp_path):
    """config.json and every other text file of a run can be committed as they are: no machine's paths
    (the data root given explicitly, and a weights file, included)."""
    again = run(out=tmp_path, data_root=str(data_root), **SMALL)
    cfg = json.loads((again / "config.json").read_text())
    assert "run_dir" not in cfg and "data_root" not in cfg
    for r in (run_a, again):
        for p in r.rglob("*"):
            if p.is_file() and p.suffix in (".json", ".csv"):
                hits = [m.group(0) for m in ABSOLUTE.finditer(p.read_text())]
                assert not hits, (p, hits[:3])


def test_same_seed_same_metrics_bitwise(run_a, tmp_path):
    run_b = run(out=tmp_path, **ARGS)
    assert run_b.name == run_a.name
    assert metrics(run_b) | {"test_manifest": None} == metrics(run_a) | {"test_manifest": None}
    a = (run_a / "eval" / "pbc_test" / "predictions.csv").read_bytes()
    assert (run_b / "eval" / "pbc_test" / "predictions.csv").read_bytes() == a


def test_sigkill_then_resume_gives_identical_metrics(run_a, tmp_path):
    proc = subprocess.Popen(cli_args(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        ckpts = list(tmp_path.glob("*/checkpoint.pt"))
        if ckpts:
            log = ckpts[0]
            break
        time.sleep(0.05)
    assert log is not None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = log.parent
    assert not (run_dir / "done").exists()
    # without --resume the unfinished run is refused, not overwritten
    r = subprocess.run(cli_args(tmp_path), capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cli_args(tmp_path, "--resume"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert metrics(run_dir)["accuracy"] == metrics(run_a)["accuracy"]
    assert metrics(run_dir)["nll"] == metrics(run_a)["nll"]
    assert not list(run_dir.rglob("*.tmp"))


def test_eval_of_saved_model_reproduces_recorded_metrics(run_a, tmp_path):
    r = subprocess.run([*CLI, "eval", "--checkpoint", str(run_a), "--test", "pbc:test", "--out", str(tmp_path),
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    again = metrics(tmp_path)
    assert again["accuracy"] == metrics(run_a)["accuracy"] and again["nll"] == metrics(run_a)["nll"]


def test_collect_counts_only_finished_runs(run_a, tmp_path):
    shutil.copytree(run_a, tmp_path / run_a.name)
    unfinished = tmp_path / "x-smoke-s0-unfinished"
    shutil.copytree(run_a, unfinished)
    (unfinished / "done").unlink()
    df, skipped = collect(tmp_path)
    assert set(df.run_dir) == {str(tmp_path / run_a.name)}
    assert skipped == [(str(unfinished), "unfinished (no done marker)")]


# ------------------------------------------------------------------------ training vs evaluation identity
def _stamp(p: Path):
    return p.read_bytes(), p.stat().st_mtime_ns


def test_a_done_run_gains_evaluations_without_retraining(small, data_root, tmp_path):
    """A new test set or test-time method on a finished run: same directory, the network is not trained
    again (model.pt and log.csv untouched), only the missing evaluations are written, and asking again
    does nothing."""
    out = tmp_path / "runs"
    d = out / small.name
    shutil.copytree(small, d)
    kept = {p: _stamp(d / p) for p in ("model.pt", "log.csv", "eval/cellavision/predictions.csv")}
    more = dict(SMALL, test_sets=["cellavision", "jtsc"], adapt=["adabn"])
    assert run_state(**{k: v for k, v in more.items() if k != "quiet"}, out=out, data_root=data_root) == (d, "evaluate")
    assert run(out=out, data_root=data_root, **more) == d
    assert {p: _stamp(d / p) for p in kept} == kept
    have = rundir.evaluations(d)
    assert set(have) == {("cellavision", "standard"), ("cellavision", "adabn"), ("jtsc", "standard"),
                         ("jtsc", "adabn")}
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["test"] == ["cellavision", "jtsc"] and cfg["adapt"] == ["adabn"]
    assert set(cfg["test_manifests"]) == {"cellavision", "jtsc"}
    assert rundir.run_name(cfg) == d.name
    written = {p: p.stat().st_mtime_ns for p in d.rglob("metrics.json")}
    assert run_state(**{k: v for k, v in more.items() if k != "quiet"}, out=out, data_root=data_root) == (d, "done")
    run(out=out, data_root=data_root, **more)
    assert {p: p.stat().st_mtime_ns for p in d.rglob("metrics.json")} == written


def _folder_test_set(root: Path, data_root: Path, n: int) -> Path:
    """An ImageFolder test set of `n` CellaVision images (symlinks: no image is copied)."""
    src = sorted((data_root / "cellavision").rglob("*.bmp"))
    for f in src[:n]:
        (root / f.parent.name).mkdir(parents=True, exist_ok=True)
        link = root / f.parent.name / f.name
        if not link.exists():
            link.symlink_to(f)
    return root


def test_a_test_set_whose_files_changed_is_evaluated_again(small, data_root, tmp_path):
    folder = _folder_test_set(tmp_path / "mycells", data_root, 6)
    out = tmp_path / "runs"
    d = out / small.name
    shutil.copytree(small, d)
    args = dict(SMALL, test_sets=["cellavision", str(folder)])
    run(out=out, data_root=data_root, **args)
    mine = next(p for p in (d / "eval").iterdir() if p.name.startswith("mycells-"))
    assert ":" not in mine.name and json.loads((mine / "metrics.json").read_text())["n"] == 6
    untouched = _stamp(d / "eval" / "cellavision" / "metrics.json")
    _folder_test_set(folder, data_root, 8)  # two more images: another manifest
    run(out=out, data_root=data_root, **args)
    assert json.loads((mine / "metrics.json").read_text())["n"] == 8
    assert _stamp(d / "eval" / "cellavision" / "metrics.json") == untouched


def test_an_evaluation_by_older_evaluation_code_is_done_again(small, data_root, tmp_path):
    """metrics.json records evaluate.EVAL_VERSION; one of another version (older code, e.g. before exact
    AdaBN) is evaluated again on a finished run, which is not retrained."""
    from wbcbench.engine.evaluate import EVAL_VERSION
    out = tmp_path / "runs"
    d = out / small.name
    shutil.copytree(small, d)
    m = d / "eval" / "cellavision" / "metrics.json"
    rec = json.loads(m.read_text())
    assert rec["eval_version"] == EVAL_VERSION
    m.write_text(json.dumps(rec | {"eval_version": EVAL_VERSION - 1, "accuracy": -1}))
    kept = _stamp(d / "model.pt")
    assert run_state(**{k: v for k, v in SMALL.items() if k != "quiet"}, out=out, data_root=data_root)[1] == "evaluate"
    run(out=out, data_root=data_root, **SMALL)
    assert json.loads(m.read_text()) == rec and _stamp(d / "model.pt") == kept


def test_training_subsets_are_drawn_with_the_run_seed(data_root):
    """Issue 10: every seed used to train on the same images (balanced_indices(..., seed=0)); now the
    subset is the run seed's, and seed 0 keeps the subset every earlier run trained on."""
    from wbcbench.core.profiles import get_profile
    from wbcbench.data.datasets import balanced_indices, get_dataset
    from wbcbench.engine.train import train_subset
    labels, hp = get_dataset("pbc:train", data_root).labels, get_profile("cpu")
    s0, s1 = train_subset(labels, hp, 0), train_subset(labels, hp, 1)
    assert list(s0) == list(balanced_indices(labels, 200, seed=0))
    assert len(s1) == len(s0) == 1000 and set(s1) != set(s0)
    assert list(train_subset(labels, hp, 1)) == list(s1)
    assert len(train_subset(labels, dict(hp, train_subset_per_class=None), 3)) == len(labels)


def test_adding_an_evaluation_needs_the_trained_network(small, data_root, tmp_path):
    out = tmp_path / "runs"
    d = out / small.name
    shutil.copytree(small, d)
    (d / "model.pt").unlink()  # as in a committed run: checkpoints are not committed
    with pytest.raises(WbcError, match="model.pt not found"):
        run(out=out, data_root=data_root, **dict(SMALL, test_sets=["jtsc"]))


def test_test_lists_and_methods_are_parsed_once(data_root, tmp_path):
    """"cellavision, jtsc" (a space after the comma) names two test sets everywhere, and neither the test
    sets nor the test-time methods change a run's directory (they are evaluations, not training)."""
    cfg = build_config("resnet18_bn", "smoke", 0, "cellavision", "cellavision, jtsc", "adabn", {}, data_root)
    assert cfg["test"] == ["cellavision", "jtsc"] and cfg["adapt"] == ["adabn"]
    base = run_dir_for(**{k: v for k, v in SMALL.items() if k != "quiet"}, out=tmp_path, data_root=data_root)
    assert run_dir_for(**{k: v for k, v in SMALL.items() if k != "quiet"} | {"test_sets": "cellavision, jtsc",
                       "adapt": "adabn, batch_stats"}, out=tmp_path, data_root=data_root) == base
    with pytest.raises(WbcError, match="unknown test-time method 'tnet'"):
        build_config("resnet18_bn", "smoke", 0, "cellavision", "cellavision", "tnet", {}, data_root)


def test_bad_seed_is_refused_before_anything_is_written(data_root, tmp_path):
    for seed in (-1, 1.5, True, "3"):
        with pytest.raises(WbcError, match="seed"):
            run(out=tmp_path / "runs", data_root=data_root, **dict(SMALL, seed=seed))
    assert not (tmp_path / "runs").exists()


def test_label_smoothing_is_applied_and_zero_changes_nothing(small, data_root, tmp_path):
    """label_smoothing=0.0 is the profiles' default: the same run (same directory, same log bytes);
    0.1 trains another network with a higher loss (smoothed targets cannot be fitted to zero loss)."""
    zero = run(out=tmp_path, data_root=data_root, label_smoothing=0.0, **SMALL)
    assert zero.name == small.name
    assert (zero / "eval/cellavision/predictions.csv").read_bytes() == \
        (small / "eval/cellavision/predictions.csv").read_bytes()
    smooth = run(out=tmp_path, data_root=data_root, label_smoothing=0.1, **SMALL)
    assert smooth.name != small.name
    a, b = pd.read_csv(small / "log.csv"), pd.read_csv(smooth / "log.csv")
    assert b.train_loss.iloc[0] != a.train_loss.iloc[0]
    assert json.loads((smooth / "config.json").read_text())["hparams"]["label_smoothing"] == 0.1


def test_augmentation_trains_another_network_and_none_is_the_plain_run(small, data_root, tmp_path):
    """augment="none" is the default: the same run as before the setting existed (same directory, same
    predictions); "hed" is another network, recorded as such, and its rerun command asks for it again."""
    from wbcbench.runs.records import train_args
    none = run(out=tmp_path, data_root=data_root, augment="none", **SMALL)
    assert none.name == small.name
    assert (none / "eval/cellavision/predictions.csv").read_bytes() == \
        (small / "eval/cellavision/predictions.csv").read_bytes()
    hed = run(out=tmp_path, data_root=data_root, augment="hed", **SMALL)
    assert hed.name != small.name
    cfg = json.loads((hed / "config.json").read_text())
    assert cfg["hparams"]["augment"] == "hed" and train_args(cfg)["augment"] == "hed"
    assert pd.read_csv(hed / "log.csv").train_loss.iloc[0] != pd.read_csv(small / "log.csv").train_loss.iloc[0]


# ------------------------------------------------------------------------------------------------ safety
class _Payload:
    """A pickle that creates a file when unpickled: what weights_only=True must refuse to run."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_checkpoints_load_without_running_code(small, tmp_path):
    """model.pt and checkpoint.pt are read with torch.load(weights_only=True): ours load (they hold only
    tensors and plain data), a pickle carrying code is refused by name and its code never runs."""
    from wbcbench.engine.fit import read_state
    from wbcbench.engine.train import load_model
    state = torch.load(small / "model.pt", map_location="cpu", weights_only=True)
    assert set(state) == {"state_dict", "wbc_config", "config"}
    d = tmp_path / "evil"
    d.mkdir()
    target = tmp_path / "pwned"
    torch.save({"state_dict": {}, "config": {}, "x": _Payload(str(target))}, d / "model.pt")
    with pytest.raises(WbcError, match="model.pt is not a wbcbench model file"):
        load_model(d)
    with pytest.raises(WbcError, match="model.pt is damaged or not a wbcbench checkpoint"):
        read_state(d / "model.pt", "cpu", ("state_dict",))
    assert not target.exists()


def test_git_commit_only_for_this_project(tmp_path, monkeypatch):
    """The code version is read only from a git checkout of this project; a package copied into another
    project's repository (or not in one at all) records None, not that project's commit."""
    own = rundir.git_commit()
    assert own["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", own["commit"])
    other = tmp_path / "other"
    (other / "wbcbench").mkdir(parents=True)
    (other / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    subprocess.run(["git", "-C", str(other), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    monkeypatch.setattr(rundir, "REPO_ROOT", other)
    assert rundir.git_commit() == {"commit": None, "dirty": None}
    monkeypatch.setattr(rundir, "REPO_ROOT", other / "wbcbench")  # inside, not at, the top level
    (other / "pyproject.toml").write_text('[project]\nname = "wbcbench"\n')
    assert rundir.git_commit() == {"commit": None, "dirty": None}
    monkeypatch.setattr(rundir, "REPO_ROOT", other)
    assert re.fullmatch(r"[0-9a-f]{40}", rundir.git_commit()["commit"])
    monkeypatch.setattr(rundir, "REPO_ROOT", tmp_path / "no-git")
    assert rundir.git_commit() == {"commit": None, "dirty": None}


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, culprit", [
    (["--model", "resnet5"], "did you mean 'resnet50'"),
    (["--model", "resnet18_bn", "--profile", "cpuu"], "unknown profile 'cpuu'"),
    (["--model", "resnet18_bn", "--train", "pbc:trian"], "pbc:trian"),
    (["--model", "resnet18_bn", "--test", "lsic"], "lsic"),
])
def test_bad_names_give_one_clear_message(data_root, tmp_path, args, culprit):
    r = subprocess.run([*CLI, "train", "--profile", "smoke", "--out", str(tmp_path), *args],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert culprit in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not any(p.name == "done" for p in tmp_path.rglob("*"))


def test_missing_data_root_is_named(tmp_path):
    r = subprocess.run([*CLI, "--data-root", str(tmp_path / "nowhere"), "data", "list"], capture_output=True, text=True)
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr


def test_unknown_device_is_refused():
    from wbcbench.engine.train import resolve_device
    with pytest.raises(WbcError, match="device"):
        resolve_device("tpu")


def test_weights_file_starts_the_model_and_is_recorded_by_content(data_root, tmp_path):
    """--weights is the offline stand-in for --pretrained: the file's tensors start the model; the record
    holds its name and sha256 (not where it lies), and only its content is part of the run's identity."""
    from wbcbench.engine.train import new_model
    from wbcbench.models import create_model
    from wbcbench.runs.rundir import run_name
    torch.manual_seed(123)
    src = create_model("resnet18_bn", pretrained=False)
    path = tmp_path / "a" / "init.pth"
    path.parent.mkdir()
    torch.save(src.state_dict(), path)
    cfg = build_config("resnet18_bn", "smoke", 0, "cellavision", ["cellavision"], (), {}, None, weights=path)
    assert cfg["model_kwargs"]["weights"] == "init.pth" and len(cfg["model_kwargs"]["weights_sha256"]) == 64
    net = new_model(cfg, torch.device("cpu"), path)
    assert torch.equal(net.state_dict()["conv1.weight"], src.state_dict()["conv1.weight"])
    moved = tmp_path / "b" / "renamed.pth"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    again = build_config("resnet18_bn", "smoke", 0, "cellavision", ["cellavision"], (), {}, None, weights=moved)
    assert run_name(again) == run_name(cfg)
    plain = build_config("resnet18_bn", "smoke", 0, "cellavision", ["cellavision"], (), {}, None)
    assert run_name(plain) != run_name(cfg)
    with pytest.raises(WbcError, match="nowhere.pth"):
        build_config("resnet18_bn", "smoke", 0, "cellavision", ["cellavision"], (), {}, None,
                     weights=tmp_path / "nowhere.pth")


def test_vits_are_built_for_the_profiles_input_size(data_root):
    """vit_tiny defaults to 64 px; the cpu and smoke profiles crop 48 and 32 px (a grid run failed on this)."""
    from wbcbench.core.profiles import get_profile
    from wbcbench.engine.train import new_model
    for profile in ("smoke", "cpu"):
        cfg = build_config("vit_tiny", profile, 0, "cellavision", ["cellavision"], (), {}, None)
        crop = get_profile(profile)["crop_size"]
        assert cfg["model_kwargs"] == {"img_size": crop}
        net = new_model(cfg, torch.device("cpu"))
        assert net(torch.zeros(2, 3, crop, crop)).shape == (2, 5)


# ------------------------------------------------------------------------------------- committed runs
# Profile settings added after the committed runs, at the value that reproduces the old behaviour.
NEW_SETTINGS = {"label_smoothing": 0.0}


def test_every_committed_run_record_rebuilds_its_own_run_directory(data_root):
    """Every committed config.json hashes to its own directory name (legacy records with the legacy keys),
    and train_args(config.json), what `reproduce` and the rerun commands use, rebuilds the same training:
    same model, data, seed and settings, or a rerun would train something else."""
    from wbcbench.core.paths import REPO_ROOT
    from wbcbench.runs.records import train_args
    records = sorted((REPO_ROOT / "results").glob("*/*/config.json"))
    # both kinds must be there: legacy records (results/cpu-pilot) and identity-2 records (the rerun grid)
    kinds = {"identity" in json.loads(p.read_text()) for p in records}
    assert len(records) >= 4 and kinds == {True, False}, records
    for p in records:
        cfg = json.loads(p.read_text())
        assert rundir.run_name(cfg) == p.parent.name, p
        args = train_args(cfg)
        fixed = {k: args.pop(k) for k in ("model", "profile", "seed", "train_set", "test_sets", "adapt", "weights")}
        again = build_config(**{k: v for k, v in fixed.items() if k != "weights"}, overrides=args,
                             data_root=data_root, weights=fixed["weights"])
        for k in ("model", "model_kwargs", "profile", "seed", "train", "train_manifest", "test"):
            assert again[k] == cfg[k], (p, k)
        recorded = cfg["adapt"]
        assert again["adapt"] == rundir.adapt_methods(cfg) == recorded, p
        added = {k: v for k, v in again["hparams"].items() if k not in cfg["hparams"]}
        assert added == {k: v for k, v in NEW_SETTINGS.items() if k in added}, (p, added)
        assert {k: again["hparams"][k] for k in cfg["hparams"]} == cfg["hparams"], p
