"""Where a sweep's runs execute: `local` (a pool of worker processes, one GPU each when there are GPUs),
`slurm` (a submitit job array) and `submitit-local` (submitit's LocalExecutor: the slurm code path on this
machine, for tests).

A launcher knows nothing about runs: it calls `work(*args)` for every tuple of `todo` somewhere, and hands
each returned result to `report`. A worker that dies is reported through `crashed(args, message)`, so one
lost process never loses the sweep. `work` must be a module-level function (it is pickled).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from wbcbench.core.errors import WbcError, unknown

LAUNCHERS = ("local", "slurm", "submitit-local")


def visible_gpus() -> list[str]:
    """GPU ids this process may use (respects an existing CUDA_VISIBLE_DEVICES)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        return [str(i) for i in range(torch.cuda.device_count())]
    except RuntimeError:  # a broken CUDA install: no usable GPUs
        return []


def _init_worker(gpu_queue, threads):
    """Worker start-up: claim one GPU (CUDA_VISIBLE_DEVICES), or a share of the CPU threads."""
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))


def launch_local(todo, work, jobs, report, crashed) -> None:
    """`jobs` worker processes (default: one per visible GPU, else 1); one job runs in this process."""
    gpus = visible_gpus()
    jobs = jobs or max(1, len(gpus))
    if jobs == 1 and len(gpus) <= 1:
        for args in todo:
            report(work(*args))
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
        futures = {pool.submit(work, *args): args for args in todo}
        for f in as_completed(futures):
            try:
                report(f.result())
            except Exception as e:  # noqa: BLE001 - a worker process died
                report(crashed(futures[f], f"worker died: {type(e).__name__}: {e}"))


def launch_submitit(todo, work, jobs, report, crashed, folder, cluster="slurm", slurm=None) -> None:
    """One submitit job per tuple of `todo` (a slurm job array, or local processes for cluster="local")."""
    try:
        import submitit
    except ImportError:
        raise WbcError("the slurm launcher needs submitit: pip install submitit") from None
    slurm = slurm or {}
    folder = Path(folder)
    if cluster == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=slurm.get("timeout_min", 60))
    else:
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params = dict(timeout_min=slurm.get("timeout_min", 24 * 60), gpus_per_node=slurm.get("gpus", 1),
                      cpus_per_task=slurm.get("cpus", 8), name="wbcbench", slurm_array_parallelism=jobs or 32)
        if slurm.get("partition"):
            params["slurm_partition"] = slurm["partition"]
        ex.update_parameters(**params)
    with ex.batch():
        submitted = [(ex.submit(work, *args), args) for args in todo]
    print(f"submitted {len(submitted)} jobs ({cluster}); logs in {folder}", file=sys.stderr, flush=True)
    for job, args in submitted:
        try:
            report(job.result())
        except Exception as e:  # noqa: BLE001 - job killed, timed out, node failure
            last = str(e).strip().splitlines()[-1:] or [type(e).__name__]
            report(crashed(args, f"job {job.job_id}: {type(e).__name__}: {last[0]}"))


def launch(launcher: str, todo, work, jobs, report, crashed, folder, slurm=None) -> None:
    """Run `work(*args)` for every tuple of `todo` with the named launcher."""
    if launcher == "local":
        launch_local(todo, work, jobs, report, crashed)
    elif launcher in ("slurm", "submitit-local"):
        launch_submitit(todo, work, jobs, report, crashed, folder,
                        "local" if launcher == "submitit-local" else "slurm", slurm)
    else:
        raise unknown("launcher", launcher, LAUNCHERS)
