"""The command line: its profile flags are generated from profiles.SETTINGS, so every command the rerun
helpers print is accepted; every bad value ends in one line and exit status 2 before anything is written;
`--test "a, b"` is one list everywhere; `eval` adds evaluations to a finished run without retraining."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from test_download import server, subset_registry, upstream  # noqa: F401 - its loopback server fixtures

from wbcbench import cli
from wbcbench.core.paths import REPO_ROOT
from wbcbench.core.profiles import SETTINGS, flag, get_profile
from wbcbench.data import download as DL
from wbcbench.data.verify import verify
from wbcbench.engine.train import build_config
from wbcbench.runs.records import train_args
from wbcbench.sweep import parameters

# A valid value for every setting, each different from the cpu profile's.
EVERY = dict(epochs=7, warmup_epochs=2, lr=1e-5, weight_decay=0.01, batch_size=16, eval_batch_size=64,
             stored_size=64, crop_size=60, hflip=False, vflip=False, mixup_alpha=0.2, label_smoothing=0.1,
             train_subset_per_class=50, pretrained=True, augment="hed", tent_batch_size=32)


def _cli(command: str) -> dict:
    """train.run's arguments as `wbcbench train` would pass them for a printed command."""
    argv = shlex.split(command)
    assert argv[0] == "wbcbench"
    return cli.train_kwargs(cli.build_parser().parse_args(argv[1:]))


def _papermill(command: str) -> dict:
    """train.run's arguments as the notebook would pass them for a printed papermill command (values
    parsed the way papermill's CLI parses them)."""
    from papermill.cli import _resolve_type
    from papermill.iorw import NoDatesSafeLoader
    argv = shlex.split(command)
    params, i = {}, 5
    assert argv[:2] == ["papermill", "notebooks/02_train_one_run.ipynb"] and argv[3:5] == ["-k", "python3"]
    while i < len(argv):
        if argv[i] == "-p":
            params[argv[i + 1]] = _resolve_type(argv[i + 2])
            i += 3
        else:
            assert argv[i] == "-y"
            params.update(yaml.load(argv[i + 1], Loader=NoDatesSafeLoader))
            i += 2
    return parameters.run_arguments(parameters.check_parameters(**params))


def _same_run(args: dict, parsed: dict) -> None:
    for k, v in args.items():
        got = parsed.get(k)
        if k in SETTINGS:
            assert k in parsed and got == v and type(got) is type(v), (k, v, got)
        elif k in ("test_sets", "adapt"):
            assert list(got or []) == list(v), (k, v, got)
        else:
            assert got == v, (k, v, got)
    unset = {k for k in SETTINGS if k not in args}
    assert not unset & set(parsed), {k: parsed[k] for k in unset & set(parsed)}  # absent: the profile's


def test_every_setting_is_a_flag_of_train(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name, s in SETTINGS.items():
        assert flag(name) in text, name
        if s.type is bool:
            assert "--no-" + flag(name)[2:] in text, name
    assert set(EVERY) == set(SETTINGS)
    assert all(EVERY[k] != get_profile("cpu")[k] for k in SETTINGS)


def test_rerun_commands_with_every_setting_are_accepted():
    """Before the schema, --weight-decay, --warmup-epochs, --eval-batch-size and --[no-]hflip/vflip (and
    any new setting) were printed but rejected by `wbcbench train`."""
    args = dict(model="resnet18_gn", profile="cpu", seed=3, train_set="pbc:train", test_sets=["lisc", "bccd"],
                adapt=["adabn", "batch_stats"], weights="resnet18.pth", **EVERY)
    cmds = parameters.rerun_commands(**args, out="runs/cpu", data_root="data")
    _same_run(dict(args, out="runs/cpu", data_root="data", resume=True), _cli(cmds["cli"]))
    _same_run(dict(args, out="runs/cpu", data_root="data"), _papermill(cmds["papermill"]))


def test_rerun_commands_of_every_committed_run_are_accepted():
    configs = sorted((REPO_ROOT / "results").glob("*/*/config.json"))
    assert configs
    for path in configs:
        args = train_args(json.loads(path.read_text()))
        cmds = parameters.rerun_commands(**args, out="results/x")
        _same_run(dict(args, out="results/x"), _cli(cmds["cli"]))
        _same_run(dict(args, out="results/x"), _papermill(cmds["papermill"]))


def test_train_every_image_of_a_profile_that_subsamples(data_root):
    """`--train-subset-per-class None` was refused ("invalid int value: 'None'") although its help offers
    None: the cpu-pretrained profile's 400 per class could not be undone. Now None (or none) trains on
    every image, on the command line and in the rerun commands printed for such a run."""
    parse = cli.build_parser().parse_args
    base = ["train", "--model", "resnet18_bn", "--profile", "cpu-pretrained", "--train", "cellavision",
            "--test", "lisc"]
    for text in ("None", "none"):
        kwargs = cli.train_kwargs(parse([*base, "--train-subset-per-class", text]))
        assert "train_subset_per_class" in kwargs and kwargs["train_subset_per_class"] is None
    assert "train_subset_per_class" not in cli.train_kwargs(parse(base))  # not given: the profile's
    kwargs = cli.train_kwargs(parse([*base, "--train-subset-per-class", "None"]))
    config = build_config(model="resnet18_bn", profile="cpu-pretrained", seed=0, train_set="cellavision",
                          test_sets=["lisc"], adapt=[], overrides={k: v for k, v in kwargs.items() if k in SETTINGS},
                          data_root=data_root)
    assert config["hparams"]["train_subset_per_class"] is None
    assert train_args(config)["train_subset_per_class"] is None  # what reproduce and the rerun commands use
    args = dict(model="resnet18_bn", profile="cpu-pretrained", seed=0, train_set="cellavision", test_sets=["lisc"],
                adapt=[], weights=None, train_subset_per_class=None)
    cmds = parameters.rerun_commands(**args, out="runs")
    assert "--train-subset-per-class None" in cmds["cli"] and "train_subset_per_class: null" in cmds["papermill"]
    _same_run(dict(args, out="runs"), _cli(cmds["cli"]))
    _same_run(dict(args, out="runs"), _papermill(cmds["papermill"]))


@pytest.mark.parametrize("extra, words", [
    (["--train-subset-per-class", "all"], "invalid int value: 'all'"),
    (["--epochs", "None"], "invalid int value: 'None'"),
    (["--adabn"], "unrecognized arguments: --adabn"),
])
def test_flag_values_argparse_refuses(extra, words, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--model", "resnet18_bn", *extra])
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_adapt_and_test_lists_are_parsed_once():
    a = cli.build_parser().parse_args(["train", "--model", "resnet18_bn", "--adapt", "batch_stats, adabn,"])
    assert cli.train_kwargs(a)["adapt"] == ["batch_stats", "adabn"]
    a = cli.build_parser().parse_args(["train", "--model", "resnet18_bn", "--test", "pbc:test, lisc,"])
    assert cli.train_kwargs(a)["test_sets"] == ["pbc:test", "lisc"]


# ------------------------------------------------------------------------------------------------ bad values
TRAIN = ["train", "--model", "resnet18_bn", "--profile", "cpu", "--train", "cellavision", "--test", "cellavision"]
BAD_TRAIN = [
    (["--seed", "-1"], ("seed", "-1", ">= 0")),
    (["--lr", "nan"], ("lr=nan is out of range", "finite number > 0")),
    (["--batch-size", "0"], ("batch_size=0 is out of range", ">= 1")),
    (["--crop-size", "64"], ("crop_size=64 is out of range", "stored_size=56")),
    (["--epochs", "0"], ("epochs=0 is out of range", ">= 1")),
    (["--epochs", "2", "--warmup-epochs", "3"], ("warmup_epochs=3 is out of range", "epochs=2")),
    (["--label-smoothing", "1"], ("label_smoothing=1.0 is out of range", "[0, 1)")),
    (["--test", " , "], ("no test set",)),
    (["--adapt", "tnet"], ("unknown test-time method 'tnet'",)),
]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wbcbench: error: "), err
    return err[0]


@pytest.mark.parametrize("extra, words", BAD_TRAIN, ids=[" ".join(b[0]) for b in BAD_TRAIN])
def test_bad_train_values_exit_2_with_one_line_and_write_nothing(extra, words, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main([*TRAIN, *extra, "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert all(w in line for w in words), line
    assert not out.exists()


@pytest.mark.parametrize("extra, words", [
    (["--override", "epochs=0"], ("epochs=0 is out of range",)),
    (["--override", "lr=nan"], ("lr=", "a finite number > 0")),
    (["--override", "crop_size=64", "--profile", "cpu"], ("crop_size=64 is out of range",)),
    (["--override", "wd=1"], ("unknown profile setting 'wd'",)),
    (["--seeds", "-1"], ("bad seed list",)),
    (["--adapt", "tnet"], ("unknown test-time method 'tnet'",)),
    (["--test", ","], ("no test set",)),
])
def test_bad_sweep_values_exit_2_before_any_notebook_runs(extra, words, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["sweep", "--profile", "smoke", "--models", "resnet18_bn", "--train", "cellavision", "--test",
            "cellavision", "--out", str(out)]
    assert cli.main([*argv, *extra]) == 2
    line = _one_error_line(capsys)
    assert all(w in line for w in words), line
    assert not out.exists()


def test_collect_of_a_missing_folder_exits_2(tmp_path, capsys):
    missing = tmp_path / "no-such-results"
    assert cli.main(["collect", str(missing)]) == 2
    assert str(missing) in _one_error_line(capsys)
    assert not missing.exists()


# ------------------------------------------------------------------------------------------------- data
def test_data_root_may_follow_the_data_action():
    parse = cli.build_parser().parse_args
    assert parse(["data", "download", "all", "--data-root", "d"]).data_root == "d"
    assert parse(["--data-root", "d", "data", "verify", "lisc"]).data_root == "d"  # not reset by the action's flag
    assert parse(["data", "import-raabin", "Train.zip", "--data-root", "d"]).paths == ["Train.zip"]


def test_download_of_an_unknown_name_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "data"
    assert cli.main(["--data-root", str(root), "data", "download", "cellavision", "lisk"]) == 2
    assert "'lisk'" in _one_error_line(capsys)
    assert not root.exists()


def test_import_raabin_does_not_ask_for_an_existing_data_root(tmp_path, capsys):
    """Like download it creates the root, so the error is about the missing zip, not the root."""
    missing = tmp_path / "Train.zip"
    assert cli.main(["data", "import-raabin", str(missing), "--data-root", str(tmp_path / "new")]) == 2
    line = _one_error_line(capsys)
    assert str(missing) in line and "data root" not in line, line


def test_download_into_a_new_data_root(tmp_path, server, upstream, monkeypatch, capsys):
    """`data download` must not require the data root to exist (list/verify do): it creates it. The loopback
    server of tests/test_download.py serves a subset; its manifests stand in for the shipped ones."""
    monkeypatch.setenv(DL.BASE_ENV, server.httpserver.url_for("/"))
    monkeypatch.setattr(DL, "MANIFESTS", upstream["manifests"])
    root = tmp_path / "new" / "data"
    assert cli.main(["--data-root", str(root), "data", "download", "cellavision"]) == 0
    n = len(upstream["subset"]["cellavision"])
    assert capsys.readouterr().out.splitlines() == [
        f"cellavision: {n} files downloaded, md5-checked, at {root / 'cellavision'}"]
    report = verify("cellavision", root)
    assert report["ok"] and report["checked"] == n, report
    assert cli.main(["--data-root", str(root), "data", "verify", "cellavision"]) == 0


# -------------------------------------------------------------------------------------------- real runs
def test_train_with_spaced_test_list_then_eval_adds_evaluations_without_retraining(data_root, tmp_path, capsys):
    """`--test "cellavision, lisc"` failed with "unknown dataset ' lisc'"; `wbcbench eval` of the finished run
    adds the AdaBN evaluations to it and trains nothing, and `train --adapt adabn` then finds nothing to do."""
    out = tmp_path / "runs"
    base = ["--data-root", str(data_root), "train", "--model", "resnet18_bn", "--profile", "smoke", "--epochs", "1",
            "--train", "cellavision", "--out", str(out), "--quiet"]
    assert cli.main([*base, "--test", "cellavision, lisc"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert run_dir.parent == out and (run_dir / "done").is_file()
    evals = {json.loads(p.read_text())["test_set"]: json.loads(p.read_text())["eval_mode"]
             for p in run_dir.glob("eval/*/metrics.json")}
    assert evals == {"cellavision": "standard", "lisc": "standard"}
    stamps = {p.name: p.stat().st_mtime_ns for p in (run_dir / "log.csv", run_dir / "model.pt")}

    assert cli.main(["--data-root", str(data_root), "eval", "--checkpoint", str(run_dir), "--test", "lisc, cellavision",
                     "--adapt", "adabn", "--quiet"]) == 0
    printed = capsys.readouterr().out
    for name in ("lisc", "lisc@adabn", "cellavision", "cellavision@adabn"):
        assert f"{name}: accuracy" in printed, printed
    assert (run_dir / "eval" / "lisc@adabn" / "metrics.json").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "log.csv", run_dir / "model.pt")} == stamps

    metrics = {p: p.stat().st_mtime_ns for p in run_dir.glob("eval/*/metrics.json")}
    assert cli.main([*base, "--test", "lisc,cellavision", "--adapt", "adabn"]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == run_dir
    assert {p: p.stat().st_mtime_ns for p in run_dir.glob("eval/*/metrics.json")} == metrics
    assert [p.name for p in out.iterdir()] == [run_dir.name]
