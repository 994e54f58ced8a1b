"""wbcbench: white-blood-cell recognition under domain shift, as an executable paper.

The folder tree is the architecture; each floor imports only from the floors below it (pyproject.toml's
import-linter contract, checked by tests/test_architecture.py):

    cli, colab   the command line and the notebooks' Colab set-up
    report       tables, sentences, plots, the README's computed blocks      (no torch)
    analysis     statistics, the analysis plan's verdict engine, each study  (no torch)
    sweep        named grids, launchers, the training notebook's parameters, the resumable sweep
    engine       augmentation, fit, the trainer, evaluation, prediction, reruns
    adapt        test-time methods (AdaBN, batch statistics, TENT, stain normalisation)  |  models
    runs         run directories and reading them (no torch)  |  data: sources, cache, loader, download
    core         errors, atomic writes, paths, names, the class order, the settings schema, metrics

The public API below is imported lazily, so `import wbcbench` (and the analysis and report floors) never
loads torch.
"""
from __future__ import annotations

from wbcbench.core.lazy import lazy_api

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    "CLASSES": "wbcbench.core.classes",
    "BENCHMARK_DOMAINS": "wbcbench.core.names",
    "IN_DOMAIN": "wbcbench.core.names",
    "SHIFTED_DOMAINS": "wbcbench.core.names",
    "WbcError": "wbcbench.core.errors",
    "get_profile": "wbcbench.core.profiles",
    "compute_metrics": "wbcbench.core.metrics",
    "get_dataset": "wbcbench.data.datasets",
    "load_dataset": "wbcbench.data.cache",
    "create_model": "wbcbench.models",
    "list_models": "wbcbench.models",
    "fit": "wbcbench.engine.fit",
    "load_model": "wbcbench.engine.train",
    "load_runs": "wbcbench.runs.collect",
    "evaluate_model": "wbcbench.engine.benchmark",
    "score": "wbcbench.engine.scoring",
    "reference_rows": "wbcbench.report.reference",
}
__all__ = ["__version__", *_API]


__getattr__, __dir__ = lazy_api(__name__, _API, globals())
