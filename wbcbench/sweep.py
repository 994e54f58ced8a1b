"""Sweeps: every point of a (model x seed) grid is one execution of the training notebook
(notebooks/02_train_one_run.ipynb) through papermill, and the executed notebook is kept inside the run
directory as `notebook.ipynb`, next to the results it produced.

A sweep can be stopped and restarted at any time: finished runs (`done` marker) are skipped, runs locked
by another process are left to it, an interrupted run resumes from its last checkpoint, and one failing
run never stops the others (the failures are listed at the end, and the exit status is non-zero).

Launchers: `local` (default; N worker processes, one GPU each when there are GPUs), `slurm` (submitit job
array) and `submitit-local` (submitit's LocalExecutor: the slurm code path on this machine, for tests).

    wbcbench sweep --profile smoke --models resnet18_bn --seeds 0,1 --test cellavision
    wbcbench sweep --grid cpu-study --jobs 2
    python -m wbcbench.sweep --grid paper --launcher slurm --slurm-partition gpu
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .errors import WbcError, unknown
from .paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "02_train_one_run.ipynb"
KERNEL = "python3"
EXECUTED = "notebook.ipynb"      # the executed notebook, inside the run directory
FAILED_DIR = "failed"            # executed notebooks of runs that failed before their run directory existed

# ------------------------------------------------------------------------------------------------ grids
# Named grids. `models` entries are a name, or (name, {overrides}) for per-model settings such as
# pretrained=True; every override must be a profile setting (wbcbench.profiles) and JSON-serialisable.
PAPER_MODELS = ["vgg16", "vgg16_bn", "resnet50", "resnet50_fc", "resnet50_freezebn", "resnet50_freezebn_last16",
                "resnet50_gn", "vit_b_16"]
CPU_MODELS = ["resnet18_bn", "resnet18_frozenbn", "resnet18_gn", "resnet18_in", "resnet18_ln", "resnet18_nonorm",
              "vit_tiny", ("efficientnet_lite0", {"pretrained": True}),
              ("efficientnet_lite0_freezebn", {"pretrained": True})]
GRIDS: dict[str, dict] = {
    # Tsutsui, Su & Wen (ICASSP 2023), Table 1: train on Raabin-WBC Train, test on Raabin TestA/TestB, LISC, BCCD.
    "paper": dict(profile="paper", models=PAPER_MODELS, seeds=list(range(10)), train="raabin:train",
                  test="raabin:testA,raabin:testB,lisc-paper,bccd", adabn=False),
    # The CPU study on the bundled data: normalisation layers under domain shift, with AdaBN.
    "cpu-study": dict(profile="cpu", models=CPU_MODELS, seeds=list(range(5)), train="pbc:train",
                      test="pbc:test,lisc,bccd,jtsc,cellavision", adabn=True),
}

# -------------------------------------------------------------------------------- notebook parameters
# The notebook's `parameters` cell, as (name, accepted types, description). The notebook validates its
# parameters with check_parameters(), so a wrong type fails in the first cell with a clear message.
PARAMETERS = (
    ("model", (str,), "a registered model name (wbcbench models)"),
    ("profile", (str,), "a training profile: paper, cpu or smoke"),
    ("seed", (int,), "an integer"),
    ("train", (str,), "a dataset name or ImageFolder path"),
    ("test", (str, list, tuple), "comma-separated dataset names or paths"),
    ("device", (str, type(None)), "auto, cpu, cuda, cuda:N or mps"),
    ("out", (str, os.PathLike), "the folder that holds run directories"),
    ("data_root", (str, os.PathLike, type(None)), "the data folder, or None for the default"),
    ("adabn", (bool,), "True or False"),
    ("resume", (bool,), "True or False"),
    ("overrides", (dict, type(None)), "a dict of profile settings, e.g. {\"epochs\": 1}"),
)


def check_parameters(**params) -> dict:
    """The notebook's parameters, type-checked; WbcError naming the culprit otherwise.
    Returns them with `test` as a list and `overrides` as a dict."""
    spec = {name: (types, what) for name, types, what in PARAMETERS}
    for name in params:
        if name not in spec:
            raise unknown("notebook parameter", name, spec)
    for name, (types, what) in spec.items():
        if name not in params:
            continue
        v = params[name]
        bad = not isinstance(v, types) or (isinstance(v, bool) and bool not in types)
        if bad:
            raise WbcError(f"notebook parameter {name}={v!r} has type {type(v).__name__}; it must be {what}")
    p = dict(params)
    if "test" in p:
        tests = p["test"].split(",") if isinstance(p["test"], str) else list(p["test"])
        if not all(isinstance(t, str) for t in tests):
            raise WbcError(f"notebook parameter test={p['test']!r} must hold dataset names (strings)")
        p["test"] = [t.strip() for t in tests if t.strip()]
        if not p["test"]:
            raise WbcError("notebook parameter test is empty; give at least one test set")
    overrides = p.get("overrides") or {}
    for k, v in overrides.items():
        if not isinstance(k, str):
            raise WbcError(f"override key {k!r} must be a string (a profile setting)")
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            raise WbcError(f"override {k}={v!r} is not JSON-serialisable") from None
    if "overrides" in p:
        from .profiles import PROFILES
        known = set().union(*(set(pr) for pr in PROFILES.values()))
        for k in overrides:
            if k not in known:
                raise unknown("profile setting", k, known)
        p["overrides"] = dict(overrides)
    return p


def rerun_commands(model, profile, seed, train, test, out, data_root=None, adabn=False, device=None,
                   overrides=None, notebook=None, output=None, **_ignored) -> dict:
    """The shell commands that redo this run: through papermill (same notebook, executed copy written to
    `output`, default executed.ipynb) and through the CLI."""
    tests = ",".join(test) if isinstance(test, (list, tuple)) else test
    overrides = overrides or {}
    nb = Path(notebook or NOTEBOOK)
    try:
        nb = nb.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    pm = ["papermill", str(nb), str(output or "executed.ipynb"), "-k", KERNEL,
          "-p", "model", model, "-p", "profile", profile, "-p", "seed", str(seed), "-p", "train", train,
          "-p", "test", tests, "-p", "out", str(out)]
    if device not in (None, "auto"):
        pm += ["-p", "device", device]
    if data_root:
        pm += ["-p", "data_root", str(data_root)]
    if adabn:
        pm += ["-p", "adabn", "True"]
    if overrides:
        pm += ["-y", json.dumps({"overrides": overrides})]
    cli = ["wbcbench"] + (["--data-root", str(data_root)] if data_root else []) + [
        "train", "--model", model, "--profile", profile, "--seed", str(seed), "--train", train, "--test", tests,
        "--out", str(out), "--resume"]
    if device not in (None, "auto"):
        cli += ["--device", device]
    if adabn:
        cli.append("--adabn")
    for k, v in overrides.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            cli.append(flag if v else "--no-" + k.replace("_", "-"))
        elif v is not None:
            cli += [flag, str(v)]
    return {"papermill": shlex.join(pm), "cli": shlex.join(cli)}


# --------------------------------------------------------------------------------------------- the plan
@dataclass
class Run:
    """One grid point: the notebook's parameters, and where its results go."""
    model: str
    profile: str
    seed: int
    train: str
    test: str
    out: str
    adabn: bool = False
    device: str | None = None
    data_root: str | None = None
    overrides: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = "".join(f"-{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.model}-{self.profile}-s{self.seed}{extra}"

    def parameters(self) -> dict:
        """Papermill parameters (JSON-serialisable)."""
        return dict(model=self.model, profile=self.profile, seed=self.seed, train=self.train, test=self.test,
                    device=self.device or "auto", out=self.out, data_root=self.data_root, adabn=self.adabn,
                    resume=True, overrides=dict(self.overrides))

    def run_dir(self) -> Path:
        """Where train() will write (WbcError for an unknown model, profile or dataset, or a parameter of
        the wrong type: the message the notebook's first cell gives for it)."""
        from .train import run_dir_for
        check_parameters(**self.parameters())
        return run_dir_for(self.model, self.profile, self.seed, self.train, self.test, self.out,
                           self.data_root, self.adabn, **self.overrides)


def parse_seeds(text) -> list[int]:
    """"0,1,2", "0-9" or "0-4,7" -> list of ints."""
    if isinstance(text, (list, tuple, range)):
        return [int(s) for s in text]
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            lo, _, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise WbcError(f"bad seed list {text!r}: use e.g. 0,1,2 or 0-9") from None
    if not seeds:
        raise WbcError(f"seed list {text!r} is empty")
    return list(dict.fromkeys(seeds))


def parse_overrides(items) -> dict:
    """["epochs=1", "pretrained=true"] -> {"epochs": 1, "pretrained": True} (values parsed as JSON)."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise WbcError(f"override {item!r} must look like KEY=VALUE, e.g. epochs=1")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = {"true": True, "false": False, "none": None}.get(v.lower(), v)
    return out


def plan(profile=None, models=None, seeds=None, train=None, test=None, out=None, adabn=None, grid=None,
         device=None, data_root=None, overrides=None) -> list[Run]:
    """The runs of a sweep: explicit arguments override the named grid's values."""
    g = {}
    if grid is not None:
        if grid not in GRIDS:
            raise unknown("grid", grid, GRIDS)
        g = GRIDS[grid]
    profile = profile or g.get("profile")
    if profile is None:
        raise WbcError("a sweep needs --profile (or --grid, which implies one)")
    from .profiles import get_profile
    get_profile(profile)  # unknown profile -> WbcError now, not once per run
    if models is None:
        models = g.get("models") or ["resnet18_bn"]
    elif isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    seeds = parse_seeds(seeds if seeds is not None else g.get("seeds", [0]))
    train = train or g.get("train", "pbc:train")
    test = test or g.get("test", "pbc:test,lisc,bccd,jtsc,cellavision")
    if isinstance(test, (list, tuple)):
        test = ",".join(test)
    adabn = g.get("adabn", False) if adabn is None else bool(adabn)
    out = str(Path(out or Path("runs") / profile).absolute())
    data_root = str(Path(data_root).absolute()) if data_root else None
    runs = []
    for seed in seeds:  # seed-major: a partly finished sweep has every model at the first seeds
        for entry in models:
            name, model_over = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
            ov = {**model_over, **(overrides or {})}
            runs.append(Run(model=name, profile=profile, seed=seed, train=train, test=test, out=out, adabn=adabn,
                            device=device, data_root=data_root, overrides=ov))
    return runs


# ---------------------------------------------------------------------------------------------- one run
def _is_locked(run_dir: Path) -> bool:
    """True when another process holds the run's lock (probe only; released at once)."""
    from .rundir import RunLocked, claim
    if not (Path(run_dir) / "lock").exists():
        return False
    try:
        with claim(run_dir):
            return False
    except RunLocked:
        return True


def execute(run: Run, notebook: str | os.PathLike = NOTEBOOK, run_dir: str | None = None) -> dict:
    """Execute the training notebook for one run (in this process's environment) and keep the executed
    notebook: `<run_dir>/notebook.ipynb`, or `<out>/failed/<label>.ipynb` when the run directory is unknown
    (a parameter the trainer rejected). Never raises for a failing run: returns a result dict."""
    import papermill as pm
    t0 = time.time()
    if run_dir is not None:
        final = Path(run_dir) / EXECUTED
    else:
        final = Path(run.out) / FAILED_DIR / f"{run.label}.ipynb"
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.stem}.{os.getpid()}.running.ipynb")
    result = dict(label=run.label, run_dir=run_dir, notebook=str(final), status="done", error=None)
    if run_dir is not None:
        # The plan was made earlier: another sweep may have finished or taken this run since.
        if (Path(run_dir) / "done").is_file():
            return dict(result, status="skipped", seconds=time.time() - t0)
        if _is_locked(Path(run_dir)):
            return dict(result, status="locked", notebook=None, seconds=time.time() - t0,
                        error=f"run {Path(run_dir).name} is being trained by another process")
        _remove_dead_staging(final)
    try:
        pm.execute_notebook(str(notebook), str(staging), parameters=run.parameters(), kernel_name=KERNEL,
                            progress_bar=False, log_output=False, report_mode=False)
    except pm.PapermillExecutionError as e:
        if e.ename == "RunLocked":
            staging.unlink(missing_ok=True)
            result.update(status="locked", error=str(e.evalue), notebook=None)
            return dict(result, seconds=time.time() - t0)
        result.update(status="failed", error=f"{e.ename}: {e.evalue}")
    except Exception as e:  # noqa: BLE001 - kernel died, notebook missing...: recorded, the sweep goes on
        result.update(status="failed", error=f"{type(e).__name__}: {e}".strip())
    if result["status"] == "done" and run_dir is not None and _finished_elsewhere(staging):
        # another sweep finished this run between our check and train(): its notebook.ipynb is the record
        staging.unlink(missing_ok=True)
        return dict(result, status="skipped", seconds=time.time() - t0)
    if staging.exists():
        os.replace(staging, final)
    else:
        result["notebook"] = None
    if result["status"] == "done" and run_dir is not None and not (Path(run_dir) / "done").is_file():
        result.update(status="failed", error=f"the notebook finished but {run_dir} has no done marker "
                                             "(train.run_dir_for disagrees with train)")
    return dict(result, seconds=time.time() - t0)


def _finished_elsewhere(executed: Path) -> bool:
    """True when the executed notebook shows train() finding the run already done (trained by another)."""
    try:
        import nbformat
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - no readable notebook: nothing to tell
        return False
    return any(o.get("output_type") == "stream" and "already done:" in o.get("text", "")
               for c in nb.cells for o in c.get("outputs", []))


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
    try:
        return execute(run, notebook, run_dir)
    except BaseException as e:  # noqa: BLE001 - a worker must always report back
        return dict(label=run.label, run_dir=run_dir, notebook=None, status="failed",
                    error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}", seconds=0.0)


# ------------------------------------------------------------------------------------------- launchers
_GPU_QUEUE = None


def _init_worker(gpu_queue, threads):
    """Worker start-up: claim one GPU (CUDA_VISIBLE_DEVICES), or a share of the CPU threads."""
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))


def visible_gpus() -> list[str]:
    """GPU ids this process may use (respects an existing CUDA_VISIBLE_DEVICES)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        return []


def _launch_local(todo, notebook, jobs, report):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    gpus = visible_gpus()
    jobs = jobs or max(1, len(gpus))
    if jobs == 1 and len(gpus) <= 1:
        for run, rd in todo:
            report(_execute_safe(run, notebook, rd))
        return
    ctx = mp.get_context("spawn")  # no fork after torch/CUDA threads exist
    queue = None
    if gpus:
        queue = ctx.Queue()
        for i in range(jobs):
            queue.put(gpus[i % len(gpus)])
    threads = None if gpus else max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(queue, threads)) as pool:
        futures = {pool.submit(_execute_safe, run, notebook, rd): run for run, rd in todo}
        for f in as_completed(futures):
            try:
                report(f.result())
            except Exception as e:  # noqa: BLE001 - a worker process died
                run = futures[f]
                report(dict(label=run.label, run_dir=None, notebook=None, status="failed",
                            error=f"worker died: {type(e).__name__}: {e}", seconds=0.0))


def _launch_submitit(todo, notebook, jobs, report, cluster, slurm):
    try:
        import submitit
    except ImportError:
        raise WbcError("the slurm launcher needs submitit: pip install submitit") from None
    folder = Path(todo[0][0].out) / ".submitit"
    if cluster == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=slurm.get("timeout_min", 60))
    else:
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params = dict(timeout_min=slurm.get("timeout_min", 24 * 60), gpus_per_node=slurm.get("gpus", 1),
                      cpus_per_task=slurm.get("cpus", 8), name="wbcbench",
                      slurm_array_parallelism=jobs or 32)
        if slurm.get("partition"):
            params["slurm_partition"] = slurm["partition"]
        ex.update_parameters(**params)
    with ex.batch():
        submitted = [(ex.submit(_execute_safe, run, notebook, rd), run) for run, rd in todo]
    print(f"submitted {len(submitted)} jobs ({cluster}); logs in {folder}", file=sys.stderr, flush=True)
    for job, run in submitted:
        try:
            report(job.result())
        except Exception as e:  # noqa: BLE001 - job killed, timed out, node failure
            report(dict(label=run.label, run_dir=None, notebook=None, status="failed",
                        error=f"job {job.job_id}: {type(e).__name__}: {str(e).strip().splitlines()[-1:]}",
                        seconds=0.0))


# ------------------------------------------------------------------------------------------------ sweep
LAUNCHERS = ("local", "slurm", "submitit-local")


def sweep(runs: list[Run], notebook=NOTEBOOK, jobs: int | None = None, launcher: str = "local",
          dry_run: bool = False, slurm: dict | None = None, log=print) -> list[dict]:
    """Run every grid point not already done; returns one result dict per run (status: done, skipped,
    locked, failed, or planned for a dry run)."""
    if launcher not in LAUNCHERS:
        raise unknown("launcher", launcher, LAUNCHERS)
    notebook = Path(notebook)
    if not notebook.is_file():
        raise WbcError(f"training notebook {notebook} not found (--notebook)")
    results, todo = [], []
    for run in runs:
        try:
            rd = run.run_dir()
        except WbcError as e:  # executed anyway, so that the notebook records the error for the user
            todo.append((run, None))
            log(f"  {run.label}: rejected ({e}); executing it anyway so that its notebook records why")
            continue
        from .rundir import is_done
        if is_done(rd):
            results.append(dict(label=run.label, run_dir=str(rd), notebook=str(rd / EXECUTED), status="skipped",
                                error=None, seconds=0.0))
        elif _is_locked(rd):
            results.append(dict(label=run.label, run_dir=str(rd), notebook=None, status="locked",
                                error=f"run {rd.name} is being trained by another process", seconds=0.0))
        else:
            todo.append((run, str(rd)))
    log(f"sweep: {len(runs)} runs, {sum(r['status'] == 'skipped' for r in results)} already done, "
        f"{sum(r['status'] == 'locked' for r in results)} locked by another process, {len(todo)} to run")
    if dry_run:
        return results + [dict(label=r.label, run_dir=rd, notebook=None, status="planned", error=None,
                               seconds=0.0) for r, rd in todo]
    finished = []

    def report(res):
        results.append(res)
        finished.append(res)
        msg = f"[{len(finished)}/{len(todo)}] {res['label']}: {res['status']} ({res['seconds']:.0f}s)"
        if res["error"]:
            msg += f" - {res['error'].strip().splitlines()[0]}"
        log(msg)

    if todo:
        if launcher == "local":
            _launch_local(todo, str(notebook.resolve()), jobs, report)
        else:
            _launch_submitit(todo, str(notebook.resolve()), jobs, report,
                             "local" if launcher == "submitit-local" else "slurm", slurm or {})
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
    """The `wbcbench sweep` options (also used by `python -m wbcbench.sweep`)."""
    import argparse
    s.add_argument("--grid", help=f"a named grid: {', '.join(GRIDS)} (other options override its values)")
    s.add_argument("--profile", help="training profile (paper, cpu, smoke); default: the grid's")
    s.add_argument("--models", help="comma-separated model names (default: the grid's, else resnet18_bn)")
    s.add_argument("--seeds", help="e.g. 0,1,2 or 0-9 (default: the grid's, else 0)")
    s.add_argument("--train", help="training set (default: the grid's, else pbc:train)")
    s.add_argument("--test", help="comma-separated test sets (default: the grid's, else the five bundled domains)")
    s.add_argument("--out", help="folder for the run directories (default: runs/PROFILE)")
    s.add_argument("--jobs", type=int, default=None,
                   help="runs in parallel (local: default one per GPU, else 1; slurm: array parallelism)")
    s.add_argument("--launcher", choices=LAUNCHERS, default="local")
    s.add_argument("--adabn", action=argparse.BooleanOptionalAction, default=None,
                   help="also evaluate with AdaBN (default: the grid's choice)")
    s.add_argument("--override", action="append", metavar="KEY=VALUE", default=[],
                   help="a profile setting for every run, e.g. --override epochs=1 (repeatable)")
    s.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    s.add_argument("--notebook", default=str(NOTEBOOK), help="the training notebook to execute")
    s.add_argument("--dry-run", action="store_true", help="list the runs and what would happen, run nothing")
    s.add_argument("--slurm-partition", default=None)
    s.add_argument("--timeout-min", type=int, default=None, help="per-job time limit (slurm)")


def main(a) -> int:
    """`wbcbench sweep` (argparse namespace from cli.py)."""
    runs = plan(profile=a.profile, models=a.models, seeds=a.seeds, train=a.train, test=a.test, out=a.out,
                adabn=a.adabn, grid=a.grid, device=a.device, data_root=getattr(a, "data_root", None),
                overrides=parse_overrides(a.override))
    slurm = {k: v for k, v in (("partition", a.slurm_partition), ("timeout_min", a.timeout_min)) if v}
    results = sweep(runs, notebook=a.notebook, jobs=a.jobs, launcher=a.launcher, dry_run=a.dry_run, slurm=slurm)
    if a.dry_run:
        for r in results:
            print(f"{r['status']:8s} {r['label']}  {r['run_dir'] or '(rejected: see its notebook once run)'}")
        return 0
    return summarize(results)


def _standalone(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m wbcbench.sweep", description=__doc__,
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
