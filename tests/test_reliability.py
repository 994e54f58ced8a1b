"""Faults injected for real: training processes and whole sweeps killed with SIGKILL at chosen and random
points, files truncated on disk, a disk that fills up, read-only and impossible output paths, two sweeps
racing for the same grid, and inputs that are wrong in kind. Each guarantee here fails if it is broken.

Everything trains resnet18_bn with the smoke profile on CellaVision (100 real images), so the whole file
takes a few minutes on 2 cores. What other files already test is not repeated here (test_train: one
SIGKILL at an epoch boundary, bad names, bitwise determinism; test_cache/test_datasets: bad image files,
colour modes, symlink loops, split CSVs; test_sweep: skipping done and locked runs).
"""
from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import kill_at_rename
import nbformat
import pytest
import torch

from wbcbench.core import atomic
from wbcbench.core.classes import class_index
from wbcbench.core.errors import WbcError
from wbcbench.engine import train
from wbcbench.engine.train import load_model
from wbcbench.runs.collect import collect
from wbcbench.runs.rundir import is_done
from wbcbench.sweep import runner

CLI = [sys.executable, "-m", "wbcbench.cli"]
ARGS = dict(model="resnet18_bn", profile="smoke", seed=5, train_set="cellavision", test_sets=["cellavision"],
            epochs=2, quiet=True)
SWEEP = dict(profile="smoke", train="cellavision", test="cellavision", overrides={"epochs": 1})


def train_cmd(out, data_root, *extra):
    return [*CLI, "--data-root", str(data_root), "train", "--model", "resnet18_bn", "--profile", "smoke",
            "--seed", "5", "--train", "cellavision", "--test", "cellavision", "--epochs", "2", "--quiet",
            "--out", str(out), *extra]


def result_files(run: Path) -> dict:
    """What a run reports: metrics (minus nothing) and the predictions file, byte for byte."""
    d = run / "eval" / "cellavision"
    return {"metrics": json.loads((d / "metrics.json").read_text()),
            "predictions": (d / "predictions.csv").read_bytes()}


def stray_temp(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".running.ipynb")]


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce exactly."""
    run = train.run(out=tmp_path_factory.mktemp("reference"), data_root=data_root, **ARGS)
    assert is_done(run)
    return run


def _kill_when(proc, condition, timeout=240, poll=0.002):
    """SIGKILL `proc` the moment `condition()` holds; returns what condition returned (None: it finished)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        hit = condition()
        if hit:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return hit
        if proc.poll() is not None:
            return None
        time.sleep(poll)
    proc.kill()
    raise AssertionError("the condition to kill at never came")


# ----------------------------------------------------------------------------------------- interruptions
def test_sigkill_anywhere_then_resume_reproduces_the_uninterrupted_run(reference, data_root, tmp_path):
    """One run killed five times (at a random moment of training, then while a checkpoint, the final model,
    the metrics and the `done` marker are being written), resumed with the same command each time: it ends
    with exactly the reference's metrics and predictions, and no temp files.

    The first kill comes from outside at a random time. The write kills come from inside (kill_at_rename:
    the CLI with os.replace patched): the process SIGKILLs itself once the temp file is complete, before
    renaming it. A write takes milliseconds, and polling from outside missed it on a fast CI machine."""
    out = tmp_path / "runs"
    run = out / reference.name
    rng = random.Random(int(os.environ.get("WBCBENCH_TEST_SEED", "0")) or None)
    delay = rng.uniform(0.0, 0.5)
    started = {}

    def random_moment():  # the run has claimed its directory; kill a random moment later
        if (run / "config.json").exists() and not started:
            started["t"] = time.time()
        return bool(started) and time.time() - started["t"] >= delay

    cmd = train_cmd(out, data_root)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert _kill_when(proc, random_moment), f"run finished within {delay:.2f} s: {proc.stderr.read().decode()}"
    assert not is_done(run)

    for name in ["checkpoint.pt", "model.pt", "metrics.json", "done"]:
        r = subprocess.run([*kill_at_rename.COMMAND, name, *cmd[len(CLI):], "--resume"], capture_output=True,
                           text=True)
        assert r.returncode == -signal.SIGKILL, f"not killed while writing {name}: {r.returncode} {r.stderr}"
        assert not is_done(run), name
        written = [p for p in stray_temp(run) if p.name.startswith(f".{name}.")]
        assert len(written) == 1, f"killed while writing {name}: its temp file should be there, {written}"
        target = run / ("eval/cellavision/metrics.json" if name == "metrics.json" else name)
        if name.endswith(".pt") and target.exists():
            torch.load(target, map_location="cpu", weights_only=True)  # any file in place is complete
        if (run / "checkpoint.pt").exists():  # the log never runs ahead of the checkpoint it resumes from
            epoch = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["epoch"]
            assert len((run / "log.csv").read_text().strip().splitlines()) - 1 <= epoch
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert is_done(run)
    assert stray_temp(run) == []
    assert not (run / "checkpoint.pt").exists()
    mine, ref = result_files(run), result_files(reference)
    assert mine["metrics"] | {"test_manifest": None} == ref["metrics"] | {"test_manifest": None}
    assert mine["predictions"] == ref["predictions"]
    log = (run / "log.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2"]


def _unfinished_copy(reference: Path, out: Path) -> Path:
    run = out / reference.name
    shutil.copytree(reference, run)
    for name in ("done", "model.pt", "eval"):
        p = run / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return run


@pytest.mark.parametrize("damage", ["truncated", "zero-bytes", "not-a-checkpoint", "other-model", "missing-keys"])
def test_damaged_checkpoint_is_never_loaded(reference, data_root, tmp_path, damage):
    """Atomic renames mean a half-written checkpoint.pt cannot appear by itself; one damaged from outside is
    refused with a message naming it (no traceback, no silent restart from scratch), and nothing is lost."""
    from wbcbench.models import create_model
    run = _unfinished_copy(reference, tmp_path)
    good = torch.load(reference / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    ckpt = run / "checkpoint.pt"
    if damage == "truncated":
        data = (reference / "model.pt").read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "zero-bytes":
        ckpt.write_bytes(b"")
    elif damage == "not-a-checkpoint":
        torch.save({"weights": good}, ckpt)
    elif damage == "other-model":
        torch.save({"model": create_model("resnet18_gn").state_dict(), "optimizer": {}, "scheduler": {},
                    "epoch": 1, "log": []}, ckpt)
    else:
        torch.save({"model": {k: v for k, v in good.items() if not k.startswith("fc.")}, "optimizer": {},
                    "scheduler": {}, "epoch": 1, "log": []}, ckpt)
    before = ckpt.read_bytes()
    want = {"truncated": "damaged", "zero-bytes": "damaged", "not-a-checkpoint": "not a wbcbench checkpoint",
            "other-model": "does not fit model resnet18_bn", "missing-keys": "Missing key.*fc.weight"}[damage]
    with pytest.raises(WbcError, match=f"checkpoint.pt.*{want}|{want}.*checkpoint.pt") as e:
        train.run(out=tmp_path, data_root=data_root, resume=True, **ARGS)
    assert str(run / "checkpoint.pt") in str(e.value) and "delete it" in str(e.value)
    assert ckpt.read_bytes() == before and not is_done(run)  # the evidence is kept, nothing is marked done


def test_damaged_model_file_is_named_by_resume_and_eval(reference, data_root, tmp_path):
    run = tmp_path / reference.name
    shutil.copytree(reference, run)
    (run / "done").unlink()
    data = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(WbcError, match=r"model.pt is damaged"):
        train.run(out=tmp_path, data_root=data_root, resume=True, **ARGS)
    with pytest.raises(WbcError, match=r"model.pt is not a wbcbench model file"):
        load_model(run)
    state = torch.load(reference / "model.pt", map_location="cpu", weights_only=True)
    state["config"] = dict(state["config"], model="resnet18_gn")  # a model file claiming another network
    torch.save(state, run / "model.pt")
    with pytest.raises(WbcError, match=r"model.pt does not fit model resnet18_gn"):
        load_model(run)


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(reference, data_root, tmp_path, monkeypatch):
    """ENOSPC half-way through writing the epoch-2 checkpoint: one clear error naming the file; the epoch-1
    checkpoint and log are intact, no temp file is left, and resuming later gives the reference's metrics."""
    real_save, calls = torch.save, []

    def filling_disk(obj, f, *a, **kw):
        calls.append(str(f))
        if len(calls) == 2:  # the second checkpoint: half of it reaches the disk, then the disk is full
            real_save(obj, f, *a, **kw)
            with open(f, "r+b") as fh:
                fh.truncate(os.path.getsize(f) // 2)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", filling_disk)
    with pytest.raises(WbcError, match=r"cannot write .*checkpoint.pt: No space left on device"):
        train.run(out=tmp_path, data_root=data_root, **ARGS)
    monkeypatch.setattr(torch, "save", real_save)
    run = tmp_path / reference.name
    assert torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["epoch"] == 1
    assert len((run / "log.csv").read_text().strip().splitlines()) == 2  # header + epoch 1
    assert stray_temp(run) == [] and not is_done(run)
    train.run(out=tmp_path, data_root=data_root, resume=True, **ARGS)
    assert result_files(run)["predictions"] == result_files(reference)["predictions"]


def _tmpfs(path: Path, *opts) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(opts), "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_a_real_full_disk_keeps_the_previous_file(tmp_path):
    """A 1 MiB tmpfs (needs root; skipped otherwise): a write that does not fit fails naming the file, and
    the previous content survives whole."""
    disk = tmp_path / "small"
    if not _tmpfs(disk, "size=1m"):
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        target = disk / "metrics.json"
        atomic.write_json(target, {"accuracy": 0.5})
        with pytest.raises(WbcError, match=r"cannot write .*metrics.json: No space left on device"):
            atomic.write_text(target, "x" * (2 << 20))
        assert json.loads(target.read_text()) == {"accuracy": 0.5}
        assert stray_temp(disk) == []
    finally:
        subprocess.run(["umount", str(disk)])


# ------------------------------------------------------------------------------------------ output paths
def test_unwritable_output_is_one_clear_message(data_root, reference, tmp_path):
    """A file where the output folder should be, a path under /dev/null, and (as root) a read-only mount:
    one line naming the path, exit status 2, and nothing evaluated or trained first."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = subprocess.run(train_cmd(blocker, data_root), capture_output=True, text=True)
    assert r.returncode == 2 and str(blocker) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    t0 = time.time()
    r = subprocess.run([*CLI, "eval", "--checkpoint", str(reference), "--test", "cellavision", "--out",
                        "/dev/null/x", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2 and "/dev/null/x" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([*CLI, "collect", str(reference.parent), "--csv", str(blocker / "table.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "table.csv" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert blocker.read_text() == "not a folder"
    ro = tmp_path / "ro"
    if _tmpfs(ro, "ro", "size=1m"):
        try:
            with pytest.raises(WbcError, match=r"Read-only file system"):
                train.run(out=ro / "runs", data_root=data_root, **ARGS)
        finally:
            subprocess.run(["umount", str(ro)])
    print(f"unwritable outputs: {time.time() - t0:.0f}s")


# ------------------------------------------------------------------------------------------------ collect
def test_collect_skips_unfinished_and_unreadable_runs_and_says_so(reference, tmp_path):
    good = tmp_path / reference.name
    shutil.copytree(reference, good)
    unfinished = tmp_path / "resnet18_bn-smoke-s1-unfinished"
    shutil.copytree(reference, unfinished)
    (unfinished / "done").unlink()
    damaged = tmp_path / "resnet18_bn-smoke-s2-damaged"
    shutil.copytree(reference, damaged)
    m = damaged / "eval" / "cellavision" / "metrics.json"
    m.write_bytes(m.read_bytes()[:40])  # a done run whose metrics were truncated on disk afterwards
    df, skipped = collect(tmp_path)
    assert set(df.run_dir) == {str(good)}
    why = dict(skipped)
    assert why[str(unfinished)] == "unfinished (no done marker)"
    assert why[str(damaged)].startswith("unreadable: JSONDecodeError")
    r = subprocess.run([*CLI, "collect", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0
    assert "1 finished runs; 2 skipped" in r.stderr
    assert f"skipped {unfinished}: unfinished" in r.stderr and f"skipped {damaged}: unreadable" in r.stderr


# ---------------------------------------------------------------------------------------------- sweeps
def _sweep_cmd(out, data_root, seeds, epochs=1):
    return [*CLI, "--data-root", str(data_root), "sweep", "--profile", "smoke", "--models", "resnet18_bn",
            "--seeds", seeds, "--train", "cellavision", "--test", "cellavision", "--out", str(out),
            "--override", f"epochs={epochs}", "--jobs", "1"]


def _wait_unlocked(run_dir: Path, timeout=60):
    """An orphaned notebook kernel notices its dead parent within a second and exits, releasing the lock."""
    deadline = time.time() + timeout
    while runner._is_locked(run_dir):
        assert time.time() < deadline, f"{run_dir} still locked {timeout}s after its sweep was killed"
        time.sleep(0.2)


def test_killed_sweep_reruns_only_unfinished_runs(data_root, tmp_path):
    """The whole sweep (its process group) is SIGKILLed while its second run trains; started again, it
    skips the finished run (its notebook untouched) and completes the other, leaving no staging files.

    The kill comes once the second run has checkpointed its first epoch, with 11 epochs still to go
    (seconds of work): killing at its config.json left the 1-epoch run about a second, and on a loaded CI
    machine the run once finished before the kill landed."""
    out = tmp_path / "sweep"
    epochs = 12
    runs = runner.plan(models="resnet18_bn", seeds="0,1", out=str(out), data_root=str(data_root),
                      **dict(SWEEP, overrides={"epochs": epochs}))
    first, second = (r.run_dir() for r in runs)
    proc = subprocess.Popen(_sweep_cmd(out, data_root, "0,1", epochs), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while not (is_done(first) and (second / train.CHECKPOINT).exists()):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_unlocked(second)
    assert not is_done(second)
    stamp = (first / "notebook.ipynb").stat().st_mtime_ns
    results = runner.sweep(runs, jobs=1, log=lambda *a: None)
    assert {r["label"]: r["status"] for r in results} == {runs[0].label: "skipped", runs[1].label: "done"}
    assert (first / "notebook.ipynb").stat().st_mtime_ns == stamp
    assert is_done(second) and stray_temp(out) == []


def test_two_sweeps_on_one_grid_never_train_a_run_twice(data_root, tmp_path):
    """Two sweep processes started together on the same grid: the run is trained by exactly one of them (the
    other finds it locked, or done), and its directory holds the notebook that trained it, not the other's."""
    out = tmp_path / "sweep"
    cmd = _sweep_cmd(out, data_root, "2")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [p.communicate(timeout=400)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    run = runner.plan(models="resnet18_bn", seeds="2", out=str(out), data_root=str(data_root), **SWEEP)[0]
    outcome = sorted(next(s for s in ("done", "locked", "skipped") if f"{run.label}: {s}" in log
                          or f"1 {s}" in log.splitlines()[-1]) for log in logs)
    assert outcome in (["done", "locked"], ["done", "skipped"]), logs
    rd = run.run_dir()
    assert is_done(rd)
    nb = nbformat.read(rd / "notebook.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "epoch 1/1" in text and "already done" not in text  # the record of the training itself
    assert len((rd / "log.csv").read_text().strip().splitlines()) == 2
    assert stray_temp(out) == []
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == [rd.name]  # no failed/ folder


def test_bad_parameter_types_fail_in_the_notebook_and_the_sweep_records_them(data_root, tmp_path):
    """A wrong type reaches the notebook (as papermill would pass it from the command line); the executed
    notebook stops with the same message that the sweep records, and the sweep goes on and exits 1."""
    out = tmp_path / "sweep"
    bad_seed = runner.Run(model="resnet18_bn", seed="abc", out=str(out), data_root=str(data_root),
                         **SWEEP)
    bad_epochs = runner.Run(model="resnet18_bn", seed=0, out=str(out), data_root=str(data_root),
                           **dict(SWEEP, overrides={"epochs": "two"}))
    lines = []
    results = runner.sweep([bad_seed, bad_epochs], jobs=1, log=lines.append)
    want = ["notebook parameter seed='abc' has type str; it must be an integer",
            "profile setting epochs='two' has type str; it must be an integer"]
    for r, msg in zip(results, want):
        assert r["status"] == "failed" and msg in r["error"], r
        nb = nbformat.read(r["notebook"], as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors[0]["ename"] == "WbcError" and msg in errors[0]["evalue"]
        assert any(msg in line for line in lines)
    assert runner.summarize(results, log=lambda *a: None) == 1
    assert not any(p.name == "done" for p in out.rglob("*"))


# -------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", ["neutrophil", "NEUTROPHILS", "Neutrophils", " neutrophil "])
def test_class_folder_spellings(name):
    assert class_index(name) == 4


def test_both_spellings_of_one_class_in_one_folder(tmp_path, data_root):
    from wbcbench.data import datasets
    src = sorted((data_root / "bccd").rglob("*.jp*g"))[:3]
    for folder, files in (("neutrophil", src[:2]), ("NEUTROPHILS", src[2:])):
        (tmp_path / folder).mkdir()
        for f in files:
            (tmp_path / folder / f.name).symlink_to(f)
    ds = datasets.get_dataset(str(tmp_path))
    assert ds.class_counts()["Neutrophil"] == 3 and len(ds) == 3


def _png(path: Path, width: int, height: int, rgb=(200, 40, 90), bilevel=False) -> Path:
    """A solid-colour PNG of any size, streamed: RGB, or 1 bit per pixel (white) to make a huge one fast."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + (b"\xff" * ((width + 7) // 8) if bilevel else bytes(rgb) * width)
    z, parts = zlib.compressobj(9), []
    for _ in range(height):
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, *((1, 0) if bilevel else (8, 2)), 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return path


def test_enormous_images_bounded_memory(tmp_path):
    """A 20000x20000 PNG (400 Mpx; 1.2 GB as RGB) is refused by name before its pixels are allocated, and
    an 8000x8000 RGB one (under Pillow's bomb limit) decodes correctly; peak memory stays bounded."""
    huge = _png(tmp_path / "huge.png", 20000, 20000, bilevel=True)
    big = _png(tmp_path / "big.png", 8000, 8000)
    assert huge.stat().st_size < 5 << 20
    # peak RSS from VmHWM: ru_maxrss would carry over this (torch-sized) process's peak through fork/exec
    code = textwrap.dedent(f"""
        import re
        from wbcbench.data import cache
        from wbcbench.core.errors import WbcError
        def peak_kb():
            return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        base = peak_kb()
        try:
            cache.decode({str(huge)!r}, 32)
            print("DECODED")
        except WbcError as e:
            print("ERROR", e)
        after_huge = peak_kb()
        arr = cache.decode({str(big)!r}, 32)
        print("PIXEL", *arr[16, 16].tolist(), arr.shape)
        print("KB", base, after_huge, peak_kb())
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert "huge.png is too large" in out["ERROR"], r.stdout
    assert out["PIXEL"] == "200 40 90 (32, 32, 3)"
    base, after_huge, peak = map(int, out["KB"].split())
    assert after_huge - base < 50_000, "refusing the huge image allocated its pixels"
    print(f"peak RSS: {base // 1024} MiB after imports, +{(after_huge - base) // 1024} MiB refusing 400 Mpx, "
          f"+{(peak - base) // 1024} MiB decoding 64 Mpx")
    assert 100_000 < peak - base < 700_000, f"decoding an 8000x8000 image took {(peak - base) // 1024} MiB"


# ------------------------------------------------------------------------------------------ reproducibility
def test_config_records_seed_data_and_code_and_eval_reproduces_everything(reference, data_root, tmp_path):
    """config.json names the seed, the manifest hash of every data set and the code version; `wbcbench eval`
    of the saved model reproduces the whole metrics.json and predictions.csv, byte for byte."""
    from wbcbench import cli
    from wbcbench.data import datasets
    cfg = json.loads((reference / "config.json").read_text())
    assert cfg["seed"] == 5
    assert cfg["train_manifest"] == datasets.get_dataset("cellavision", data_root).manifest_hash()
    assert cfg["test_manifests"] == {"cellavision": cfg["train_manifest"]}
    assert len(cfg["code"]["commit"]) == 40 and isinstance(cfg["code"]["dirty"], bool)
    assert cli.main(["--data-root", str(data_root), "eval", "--checkpoint", str(reference), "--test", "cellavision",
                     "--out", str(tmp_path), "--quiet"]) == 0
    again = tmp_path / "eval" / "cellavision"
    ref = reference / "eval" / "cellavision"
    assert (again / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()
    assert (again / "predictions.csv").read_bytes() == (ref / "predictions.csv").read_bytes()
