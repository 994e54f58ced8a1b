"""The trainer on real PBC images: it learns, it is deterministic, it resumes exactly, and bad
input ends with one clear message."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from wbcbench.collect import collect
from wbcbench.errors import WbcError
from wbcbench.train import train

ARGS = dict(model="resnet18_bn", profile="smoke", seed=3, train="pbc:train", test=["pbc:test"],
            epochs=3, train_subset_per_class=64, quiet=True)
CLI = [sys.executable, "-m", "wbcbench.cli"]


def cli_args(out, *extra):
    return [*CLI, "train", "--model", "resnet18_bn", "--profile", "smoke", "--seed", "3", "--test", "pbc:test",
            "--epochs", "3", "--train-subset-per-class", "64", "--quiet", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def run_a(data_root, tmp_path_factory):
    return train(out=tmp_path_factory.mktemp("runs-a"), **ARGS)


def metrics(run):
    return json.loads((Path(run) / "eval" / "pbc:test" / "metrics.json").read_text())


def test_learns_and_writes_a_complete_run(run_a):
    log = pd.read_csv(run_a / "log.csv")
    assert list(log.epoch) == [1, 2, 3]
    assert log.train_loss.iloc[-1] < log.train_loss.iloc[0]
    m = metrics(run_a)
    assert m["n"] == 3099
    assert m["accuracy"] > m["majority_baseline"] + 0.10, m
    cfg = json.loads((run_a / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["hparams"]["epochs"] == 3 and len(cfg["train_manifest"]) >= 16
    assert cfg["code"]["commit"] and cfg["environment"]["versions"]["torch"]
    preds = pd.read_csv(run_a / "eval" / "pbc:test" / "predictions.csv")
    assert len(preds) == 3099
    assert preds.filter(like="p_").sum(axis=1).sub(1).abs().max() < 1e-4
    assert (run_a / "done").is_file() and (run_a / "model.pt").is_file()
    assert not (run_a / "checkpoint.pt").exists()
    assert not list(run_a.rglob("*.tmp"))


def test_same_seed_same_metrics_bitwise(run_a, tmp_path):
    run_b = train(out=tmp_path, **ARGS)
    assert run_b.name == run_a.name
    assert metrics(run_b) | {"test_manifest": None} == metrics(run_a) | {"test_manifest": None}
    a = (run_a / "eval" / "pbc:test" / "predictions.csv").read_bytes()
    assert (run_b / "eval" / "pbc:test" / "predictions.csv").read_bytes() == a


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
    run = log.parent
    assert not (run / "done").exists()
    # without --resume the unfinished run is refused, not overwritten
    r = subprocess.run(cli_args(tmp_path), capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cli_args(tmp_path, "--resume"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert metrics(run)["accuracy"] == metrics(run_a)["accuracy"]
    assert metrics(run)["nll"] == metrics(run_a)["nll"]
    assert not list(run.rglob("*.tmp"))


def test_eval_of_saved_model_reproduces_recorded_metrics(run_a, tmp_path):
    r = subprocess.run([*CLI, "eval", "--checkpoint", str(run_a), "--test", "pbc:test", "--out", str(tmp_path),
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    again = json.loads((tmp_path / "eval" / "pbc:test" / "metrics.json").read_text())
    assert again["accuracy"] == metrics(run_a)["accuracy"] and again["nll"] == metrics(run_a)["nll"]


def test_collect_counts_only_finished_runs(run_a, tmp_path):
    import shutil
    shutil.copytree(run_a, tmp_path / run_a.name)
    unfinished = tmp_path / "x-smoke-s0-unfinished"
    shutil.copytree(run_a, unfinished)
    (unfinished / "done").unlink()
    df, skipped = collect(tmp_path)
    assert set(df.run_dir) == {str(tmp_path / run_a.name)}
    assert skipped == [(str(unfinished), "unfinished (no done marker)")]


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
    from wbcbench.train import resolve_device
    with pytest.raises(WbcError, match="device"):
        resolve_device("tpu")


def test_weights_file_starts_the_model_and_is_recorded(data_root, tmp_path):
    """--weights is the offline stand-in for --pretrained: the file's tensors start the model and its
    content hash is part of the run's identity."""
    import torch
    from wbcbench.models import create_model
    from wbcbench.rundir import run_name
    from wbcbench.train import _new_model, build_config
    torch.manual_seed(123)
    src = create_model("resnet18_bn", pretrained=False)
    path = tmp_path / "init.pth"
    torch.save(src.state_dict(), path)
    cfg = build_config("resnet18_bn", "smoke", 0, "cellavision", ["cellavision"], False, {}, None, weights=path)
    assert cfg["model_kwargs"]["weights_sha256"] and cfg["model_kwargs"]["weights"] == str(path.resolve())
    net = _new_model(cfg, torch.device("cpu"))
    assert torch.equal(net.state_dict()["conv1.weight"], src.state_dict()["conv1.weight"])
    plain = build_config("resnet18_bn", "smoke", 0, "cellavision", ["cellavision"], False, {}, None)
    assert run_name(plain) != run_name(cfg)
    with pytest.raises(WbcError, match="nowhere.pth"):
        build_config("resnet18_bn", "smoke", 0, "cellavision", ["cellavision"], False, {}, None,
                     weights=tmp_path / "nowhere.pth")


def test_vits_are_built_for_the_profiles_input_size(data_root):
    """vit_tiny defaults to 64 px; the cpu and smoke profiles crop 48 and 32 px (a grid run failed on this)."""
    import torch
    from wbcbench.profiles import get_profile
    from wbcbench.train import _new_model, build_config
    for profile in ("smoke", "cpu"):
        cfg = build_config("vit_tiny", profile, 0, "cellavision", ["cellavision"], False, {}, None)
        crop = get_profile(profile)["crop_size"]
        assert cfg["model_kwargs"] == {"img_size": crop}
        net = _new_model(cfg, torch.device("cpu"))
        assert net(torch.zeros(2, 3, crop, crop)).shape == (2, 5)


def test_every_committed_run_record_rebuilds_its_own_run_directory(data_root):
    """train_args(config.json) is what `reproduce` and the rerun commands use: for every committed study
    and pilot run, it must lead back to the same hashed directory, or a rerun would train something else."""
    from wbcbench.paths import REPO_ROOT
    from wbcbench.rundir import run_name
    from wbcbench.train import build_config, train_args
    records = sorted((REPO_ROOT / "results").glob("*/*/config.json"))
    assert len(records) >= 45
    for p in records:
        cfg = json.loads(p.read_text())
        args = train_args(cfg)
        fixed = {k: args.pop(k) for k in ("model", "profile", "seed", "train", "test", "adabn", "weights")}
        again = build_config(**{k: v for k, v in fixed.items() if k != "weights"}, overrides=args,
                             data_root=data_root, weights=fixed["weights"])
        assert run_name(again) == p.parent.name, p
