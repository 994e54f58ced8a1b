"""Sweeps: every point of a (model x seed) grid is one execution of the training notebook
(notebooks/02_train_one_run.ipynb) through papermill, and the executed notebook is kept inside the run
directory as `notebook.ipynb`, next to the results it produced.

A sweep can be stopped and restarted at any time: finished runs are skipped, runs locked by another
process are left to it, an interrupted run resumes from its last checkpoint, and one failing run never
stops the others (the failures are listed at the end, and the exit status is non-zero). Grids are in
grids.py, the places runs execute (local processes, slurm) in launchers.py.

    wbcbench sweep --profile smoke --models resnet18_bn --seeds 0,1 --test cellavision
    wbcbench sweep --grid cpu-study --jobs 2
    python -m wbcbench.sweep.runner --grid paper --launcher slurm --slurm-partition gpu
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from wbcbench.core.atomic import atomic_path
from wbcbench.core.errors import WbcError, unknown
from wbcbench.core.names import parse_adapt
from wbcbench.core.profiles import PROFILES, SETTINGS, check_seed, check_setting, get_profile
from wbcbench.data.datasets import parse_test_sets
from wbcbench.engine import train
from wbcbench.runs import rundir
from wbcbench.sweep.grids import BUNDLED_TESTS, GRIDS, entry_seeds, get_grid
from wbcbench.sweep.launchers import LAUNCHERS, launch
from wbcbench.sweep.parameters import KERNEL, NOTEBOOK, check_parameters, relative, run_arguments

EXECUTED = "notebook.ipynb"      # the executed notebook, inside the run directory
FAILED_DIR = "failed"            # executed notebooks of runs that failed before their run directory existed

# --------------------------------------------------------------------------------------------- the plan
@dataclass
class Run:
    """One grid point: the notebook's parameters, and where its results go. Relative paths (out,
    data_root) are relative to `cwd`, the sweep's working directory, wherever the run executes."""
    model: str
    profile: str
    seed: int
    train: str = "pbc:train"
    test: str | list = "pbc:test"
    out: str = "runs"
    adapt: tuple | list = ()
    device: str | None = None
    data_root: str | None = None
    overrides: dict = field(default_factory=dict)
    cwd: str | None = None

    @property
    def label(self) -> str:
        extra = "".join(f"-{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.model}-{self.profile}-s{self.seed}{extra}"

    def parameters(self) -> dict:
        """Papermill parameters (JSON-serialisable). No progress bars: the per-epoch lines are the record."""
        return dict(model=self.model, profile=self.profile, seed=self.seed, train=self.train,
                    test=self.test if isinstance(self.test, str) else list(self.test), device=self.device or "auto",
                    out=self.out, data_root=self.data_root, adapt=list(self.adapt), resume=True, progress=False,
                    overrides=dict(self.overrides))

    def _location(self) -> dict:
        """train.run_dir_for's arguments, from the checked parameters: so "pbc:test, lisc" names the run
        the notebook trains (WbcError for a bad parameter: the message the notebook's first cell gives)."""
        args = run_arguments(check_parameters(**self.parameters()))
        for k in ("device", "resume", "progress"):
            args.pop(k)
        return args

    def run_dir(self) -> Path:
        """Where train.run will write."""
        return train.run_dir_for(**self._location())

    def state(self) -> tuple[Path, str]:
        """(run directory, what train.run would do: "train", "evaluate" or "done")."""
        return train.run_state(**self._location())


def parse_seeds(text) -> list[int]:
    """"0,1,2", "0-9" or "0-4,7" -> list of ints."""
    if isinstance(text, (list, tuple, range)):
        return list(dict.fromkeys(check_seed(s) for s in text))
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            lo, _, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise WbcError(f"bad seed list {text!r}: use e.g. 0,1,2 or 0-9 (seeds are integers >= 0)") from None
    if not seeds:
        raise WbcError(f"seed list {text!r} is empty")
    return list(dict.fromkeys(seeds))


def parse_overrides(items) -> dict:
    """["epochs=1", "pretrained=true"] -> {"epochs": 1, "pretrained": True} (values parsed as JSON), each a
    profile setting of the right type and range."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise WbcError(f"override {item!r} must look like KEY=VALUE, e.g. epochs=1")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        try:
            value = json.loads(v)
        except ValueError:
            value = {"true": True, "false": False, "none": None}.get(v.strip().lower(), v)
        out[k] = check_setting(k, value)
    return out


def plan(profile=None, models=None, seeds=None, train=None, test=None, out=None, adapt=None, grid=None,
         device=None, data_root=None, overrides=None) -> list[Run]:
    """The runs of a sweep: explicit arguments override the named grid's values. Every value shared by the
    runs is checked here, so a bad one fails the sweep before any notebook runs."""
    g = get_grid(grid) if grid is not None else {}
    profile = profile or g.get("profile")
    if profile is None:
        raise WbcError("a sweep needs --profile (or --grid, which implies one)")
    if models is None:
        models = g.get("models") or ["resnet18_bn"]
    elif isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    seeds = parse_seeds(seeds if seeds is not None else g.get("seeds", [0]))
    train = train or g.get("train", "pbc:train")
    test = parse_test_sets(test or g.get("test", BUNDLED_TESTS))
    adapt = parse_adapt(g.get("adapt", ()) if adapt is None else adapt)
    out = str(out or Path("runs") / profile)
    runs = []
    for seed in seeds:  # seed-major: a partly finished sweep has every model at the first seeds
        for entry in models:
            if seed not in entry_seeds(entry, seeds):
                continue
            name, model_over = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
            model_over.pop("seeds", None)
            ov = {**model_over, **(overrides or {})}
            get_profile(profile, **ov)  # unknown profile or bad setting: WbcError now, not once per run
            runs.append(Run(model=name, profile=profile, seed=seed, train=train, test=test, out=out, adapt=adapt,
                            device=device, data_root=data_root, overrides=ov, cwd=os.getcwd()))
    return runs


# ---------------------------------------------------------------------------------------------- one run
def _is_locked(run_dir: Path) -> bool:
    """True when another process holds the run's lock (probe only; released at once)."""
    if not (Path(run_dir) / "lock").exists():
        return False
    try:
        with rundir.claim(run_dir):
            return False
    except rundir.RunLocked:
        return True


def _result(run: Run, run_dir, status, notebook=None, error=None, seconds=0.0) -> dict:
    return dict(label=run.label, run_dir=None if run_dir is None else str(run_dir), notebook=notebook,
                status=status, error=error, seconds=seconds)


def execute(run: Run, notebook: str | os.PathLike = NOTEBOOK, run_dir: str | None = None) -> dict:
    """Execute the training notebook for one run and keep the executed notebook: `<run_dir>/notebook.ipynb`,
    or `<out>/failed/<label>.ipynb` when the run directory is unknown (a parameter the trainer rejected).
    Never raises for a failing run: returns a result dict.

    Whether this execution did the work is structural: the kernel gets a fresh token in
    $WBCBENCH_RUN_TOKEN, which rundir.mark_done writes into the `done` marker; a marker with another token
    means another process finished the run meanwhile, and its notebook stays the record."""
    pm = _papermill()
    if run.cwd and os.getcwd() != run.cwd:
        os.chdir(run.cwd)  # a slurm job may start elsewhere: relative paths mean what they meant to the sweep
    t0 = time.time()
    final = Path(run_dir) / EXECUTED if run_dir is not None else Path(run.out) / FAILED_DIR / f"{run.label}.ipynb"
    if run_dir is not None:
        # The plan was made earlier: another sweep may have finished or taken this run since.
        try:
            state = run.state()[1]
        except WbcError:  # rejected since the plan (data changed?): the notebook records why
            state = None
        if state == "done":
            return _result(run, run_dir, "skipped", str(final), seconds=time.time() - t0)
        if _is_locked(Path(run_dir)):
            return _result(run, run_dir, "locked", error=f"run {Path(run_dir).name} is being trained by another "
                                                          "process", seconds=time.time() - t0)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(final)
    staging = final.with_name(f".{final.stem}.{os.getpid()}.running.ipynb")
    status, error, token = "done", None, uuid.uuid4().hex
    before = os.environ.get(rundir.RUN_TOKEN_ENV)
    os.environ[rundir.RUN_TOKEN_ENV] = token  # inherited by the kernel papermill starts
    try:
        pm.execute_notebook(str(notebook), str(staging), parameters=run.parameters(), kernel_name=KERNEL,
                            progress_bar=False, log_output=False, report_mode=False)
    except pm.PapermillExecutionError as e:
        if e.ename == "RunLocked":
            staging.unlink(missing_ok=True)
            return _result(run, run_dir, "locked", error=str(e.evalue), seconds=time.time() - t0)
        status, error = "failed", f"{e.ename}: {e.evalue}"
    except Exception as e:  # noqa: BLE001 - kernel died, notebook missing...: recorded, the sweep goes on
        status, error = "failed", f"{type(e).__name__}: {e}".strip()
    finally:
        if before is None:
            os.environ.pop(rundir.RUN_TOKEN_ENV, None)
        else:
            os.environ[rundir.RUN_TOKEN_ENV] = before
    if status == "done" and run_dir is not None:
        marker = rundir.done_token(run_dir)
        if marker is None:
            status, error = "failed", (f"the notebook finished but {run_dir} has no done marker "
                                       "(train.run_dir_for disagrees with train.run)")
        elif marker != token:  # finished by another process between our check and train.run
            staging.unlink(missing_ok=True)
            return _result(run, run_dir, "skipped", str(final), seconds=time.time() - t0)
    if not staging.exists():
        return _result(run, run_dir, status, None, error, time.time() - t0)
    _keep(staging, final, notebook)
    return _result(run, run_dir, status, str(final), error, time.time() - t0)


def _papermill():
    """papermill, an optional dependency: only sweeps need it."""
    try:
        import papermill
    except ImportError:
        raise WbcError("sweeps execute the training notebook with papermill: pip install papermill") from None
    return papermill


def _keep(staging: Path, final: Path, notebook) -> None:
    """Move the executed notebook into place, with papermill's record of where it ran made relative."""
    import nbformat  # comes with papermill
    nb = nbformat.read(staging, as_version=4)
    record = nb.metadata.get("papermill", {})
    record.update(input_path=relative(notebook), output_path=relative(final))
    with atomic_path(final) as tmp:
        nbformat.write(nb, tmp)
    staging.unlink(missing_ok=True)


def _remove_dead_staging(final: Path) -> None:
    """Delete staging copies (`.notebook.<pid>.running.ipynb`) left by sweeps that were killed."""
    for p in final.parent.glob(f".{final.stem}.*.running.ipynb"):
        try:
            pid = int(p.name.split(".")[2])
            os.kill(pid, 0)  # raises when no such process
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError, OSError):
            pass


def _execute_safe(run: Run, notebook: str, run_dir: str | None) -> dict:
    """execute(), for a worker that must always report back."""
    try:
        return execute(run, notebook, run_dir)
    except BaseException as e:  # noqa: BLE001 - a worker must always report back
        return _result(run, run_dir, "failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")


def _crashed(args, message: str) -> dict:
    run, _, run_dir = args
    return _result(run, run_dir, "failed", error=message)


# ------------------------------------------------------------------------------------------------ sweep
def sweep(runs: list[Run], notebook=NOTEBOOK, jobs: int | None = None, launcher: str = "local",
          dry_run: bool = False, slurm: dict | None = None, log=print) -> list[dict]:
    """Run every grid point not already done; returns one result dict per run (status: done, skipped,
    locked, failed, or planned for a dry run)."""
    if launcher not in LAUNCHERS:
        raise unknown("launcher", launcher, LAUNCHERS)
    notebook = Path(notebook)
    if not notebook.is_file():
        raise WbcError(f"training notebook {notebook} not found (--notebook)")
    if not dry_run:
        _papermill()
    results, todo = [], []
    for run in runs:
        try:
            rd, state = run.state()
        except WbcError as e:  # executed anyway, so that the notebook records the error for the user
            todo.append((run, None))
            log(f"  {run.label}: rejected ({e}); executing it anyway so that its notebook records why")
            continue
        if state == "done":
            results.append(_result(run, rd, "skipped", str(rd / EXECUTED)))
        elif _is_locked(rd):
            results.append(_result(run, rd, "locked", error=f"run {rd.name} is being trained by another process"))
        else:
            todo.append((run, str(rd)))
    log(f"sweep: {len(runs)} runs, {sum(r['status'] == 'skipped' for r in results)} already done, "
        f"{sum(r['status'] == 'locked' for r in results)} locked by another process, {len(todo)} to run")
    if dry_run:
        return results + [_result(r, rd, "planned") for r, rd in todo]
    finished = []

    def report(res):
        results.append(res)
        finished.append(res)
        msg = f"[{len(finished)}/{len(todo)}] {res['label']}: {res['status']} ({res['seconds']:.0f}s)"
        if res["error"]:
            msg += f" - {res['error'].strip().splitlines()[0]}"
        log(msg)

    if todo:
        nb = str(notebook.resolve())
        launch(launcher, [(run, nb, rd) for run, rd in todo], _execute_safe, jobs, report, _crashed,
               Path(todo[0][0].out) / ".submitit", slurm)
    return results


def summarize(results: list[dict], log=print) -> int:
    """Print the outcome; exit status 1 when any run failed."""
    counts = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    log("sweep finished: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    failed = [r for r in results if r["status"] == "failed"]
    if failed:
        log(f"{len(failed)} failed runs:")
        for r in failed:
            log(f"  {r['label']}: {r['error'].strip()}")
            if r.get("notebook"):
                log(f"    executed notebook: {r['notebook']}")
    return 1 if failed else 0


def add_arguments(s) -> None:
    """The `wbcbench sweep` options (also used by `python -m wbcbench.sweep.runner`)."""
    s.add_argument("--grid", help=f"a named grid: {', '.join(GRIDS)} (other options override its values)")
    s.add_argument("--profile", help=f"training profile ({', '.join(PROFILES)}); default: the grid's")
    s.add_argument("--models", help="comma-separated model names (default: the grid's, else resnet18_bn)")
    s.add_argument("--seeds", help="e.g. 0,1,2 or 0-9 (default: the grid's, else 0)")
    s.add_argument("--train", help="training set (default: the grid's, else pbc:train)")
    s.add_argument("--test", help="comma-separated test sets (default: the grid's, else the five bundled domains)")
    s.add_argument("--out", help="folder for the run directories (default: runs/PROFILE)")
    s.add_argument("--jobs", type=int, default=None,
                   help="runs in parallel (local: default one per GPU, else 1; slurm: array parallelism)")
    s.add_argument("--launcher", choices=LAUNCHERS, default="local")
    s.add_argument("--adapt", default=None, metavar="METHODS",
                   help="comma-separated test-time methods evaluated beside the standard evaluation, e.g. "
                        "adabn,tent; \"\" for none (default: the grid's)")
    s.add_argument("--override", action="append", metavar="KEY=VALUE", default=[],
                   help=f"a profile setting for every run, e.g. --override epochs=1 (repeatable); "
                        f"settings: {', '.join(SETTINGS)}")
    s.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    s.add_argument("--notebook", default=str(NOTEBOOK), help="the training notebook to execute")
    s.add_argument("--dry-run", action="store_true", help="list the runs and what would happen, run nothing")
    s.add_argument("--slurm-partition", default=None)
    s.add_argument("--timeout-min", type=int, default=None, help="per-job time limit (slurm)")


def main(a) -> int:
    """`wbcbench sweep` (argparse namespace from cli.py)."""
    runs = plan(profile=a.profile, models=a.models, seeds=a.seeds, train=a.train, test=a.test, out=a.out,
                adapt=a.adapt, grid=a.grid, device=a.device, data_root=getattr(a, "data_root", None),
                overrides=parse_overrides(a.override))
    slurm = {k: v for k, v in (("partition", a.slurm_partition), ("timeout_min", a.timeout_min)) if v}
    results = sweep(runs, notebook=a.notebook, jobs=a.jobs, launcher=a.launcher, dry_run=a.dry_run, slurm=slurm)
    if a.dry_run:
        for r in results:
            print(f"{r['status']:8s} {r['label']}  {r['run_dir'] or '(rejected: see its notebook once run)'}")
        return 0
    return summarize(results)


def _standalone(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m wbcbench.sweep.runner", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None)
    add_arguments(p)
    a = p.parse_args(argv)
    try:
        return main(a)
    except WbcError as e:
        print(f"wbcbench sweep: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_standalone())
