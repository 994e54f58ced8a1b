"""The README's computed blocks: every verdict the README states is written by one command from the committed
runs (`python -m wbcbench.report.readme README.md`) and checked by a test, so the README cannot disagree with them.

A block is the text between `<!-- NAME:start -->` and `<!-- NAME:end -->`; BLOCKS names each block, the run
folder it reads and the function that writes it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wbcbench.analysis import cpu_study
from wbcbench.analysis import pretrained_study as SP
from wbcbench.analysis import pretrained_v2 as V2
from wbcbench.analysis.verdict import MIN_PAIRS, grid_progress, variant_seeds
from wbcbench.core.atomic import write_text
from wbcbench.core.errors import WbcError
from wbcbench.core.names import SHIFTED_DOMAINS
from wbcbench.report import findings, verdict_text
from wbcbench.report.tables import to_markdown
from wbcbench.report.words import arms_named, domain_name, holds_only_where, listed, shown_domain_words
from wbcbench.runs.collect import load_runs, resolve_dir

COMMAND = "python -m wbcbench.report.readme README.md"
PLAN = "[analysis plan](book/analysis_plan.md)"


def _claims_table(verdict) -> str:
    return to_markdown(verdict_text.claims_table(verdict, counts=False))


def cpu_block(runs_dir: str) -> list[str]:
    """The from-scratch CPU study: its progress and the claim table."""
    runs, _ = load_runs(runs_dir)
    return [f"The verdict, computed by the {PLAN} from the runs: " + verdict_text.progress_sentence(runs, runs_dir), "",
            _claims_table(cpu_study.verdict_table(runs))]


def _words_table(verdict) -> str:
    """Claims x shifted domains, one word each (pretrained_v2.domain_words, as words.shown_domain_words says it)."""
    words = shown_domain_words(verdict)
    return to_markdown(words.rename(columns={d: domain_name(d) for d in SHIFTED_DOMAINS}))


def pretrained_block(runs_dir: str) -> list[str]:
    """The pretrained study: its progress, the claim table (P1-P4), each claim's word per domain and the
    new-lab recommendation."""
    runs, _ = load_runs(runs_dir)
    verdict = SP.verdict(runs)
    return [f"The verdict, computed by the addendum of the {PLAN} from the runs: "
            + verdict_text.progress_sentence(runs, runs_dir, grid=SP.GRID), "", _claims_table(verdict), "",
            f"A claim's single word above holds when any one of its comparisons holds. Per domain ({PER_DOMAIN}):",
            "", _words_table(verdict), "",
            "Deploying in a new lab: " + verdict_text.recommendation_sentence(SP.recommendation(runs))]


def converged_block(runs_dir: str) -> list[str]:
    """The converged study: its progress, each claim's word per domain (V1-V6) and the recommendation v2."""
    runs, _ = load_runs(runs_dir)
    seeds = variant_seeds(V2.GRID)
    most = max(len(s) for s in seeds.values())
    cut = [v for v, s in seeds.items() if len(s) < most]
    kept = seeds[cut[0]] if cut else []
    progress = grid_progress(runs, V2.GRID)
    complete = progress["finished"] >= progress["total"]
    fewer = (f" By the plan's 10-hour rule {arms_named(cut, seeds)} run at seed{'s' * (len(kept) != 1)} "
             f"{listed([str(k) for k in kept])} only ({len(cut) * (most - len(kept))} planned runs dropped): their "
             f"comparisons are undetermined (a test needs {MIN_PAIRS} seeds), so {holds_only_where(cut, seeds)}."
             if cut else "")
    return [f"Computed by the second addendum of the {PLAN} from the runs: "
            + verdict_text.progress_sentence(runs, runs_dir, grid=V2.GRID) + fewer + f" Per domain ({PER_DOMAIN}):",
            "",
            _words_table(V2.verdict(runs)), "",
            "V1–V4 retest the low-budget study's P1–P4 (above) on converged networks, on the score itself and per "
            "domain: " + ("these words, not P1–P4's, are the book's answer." if complete else
                          "until this grid is complete P1–P4's words stand, with the caveats above."), "",
            ("Deploying in a new lab (this replaces the low-budget study's recommendation above): " if complete else
             "Deploying in a new lab, so far (the low-budget study's recommendation above stands until this grid is "
             "complete): ") + verdict_text.recommendation_sentence(V2.recommendation(runs), V2.RULE)
            + (" " + held if (held := findings.held_out_sentence(findings.CONVERGED, runs)) else "")]


PER_DOMAIN = ("a claim holds on a domain when its comparisons hold there on at least two of the three networks "
              "and are contradicted on none")
BLOCKS = {"verdict": ("results/cpu", cpu_block),
          "verdict-pretrained": ("results/cpu-pretrained", pretrained_block),
          "verdict-converged": ("results/cpu-pretrained-v2", converged_block)}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def block(name: str, runs_dir: str | None = None) -> str:
    """Block `name` as the README holds it, markers included, computed from `runs_dir` (default: BLOCKS')."""
    default_dir, write = BLOCKS[name]
    start, end = markers(name)
    return "\n".join([start, f"<!-- generated by `{COMMAND}`; do not edit by hand -->",
                      *write(runs_dir or default_dir), end])


def update(path, runs_dirs: dict | None = None) -> bool:
    """Rewrite every block of `path` in place (atomically); True when the file changed. WbcError, nothing
    written, when the file cannot be read or a block's markers are not there exactly once, in order."""
    path, runs_dirs = Path(path), runs_dirs or {}
    try:
        text = path.read_text()
    except OSError as e:
        raise WbcError(f"cannot read {path}: {e.strerror or e}") from None
    new = text
    for name in BLOCKS:
        start, end = markers(name)
        if new.count(start) != 1 or new.count(end) != 1 or new.index(start) > new.index(end):
            raise WbcError(f"{path} needs exactly one {start} line followed by one {end} line")
        head, rest = new.split(start)
        new = head + block(name, runs_dirs.get(name)) + rest.split(end, 1)[1]
    if new != text:
        write_text(path, new)
    return new != text


def _runs_option(value: str) -> tuple[str, str]:
    name, sep, folder = value.partition("=")
    if not sep or name not in BLOCKS:
        raise argparse.ArgumentTypeError(f"expected BLOCK=FOLDER with BLOCK one of {', '.join(BLOCKS)}: {value!r}")
    return name, folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m wbcbench.report.readme",
                                description="Rewrite the README's verdict blocks.")
    p.add_argument("readme", help="the README to update (between its block markers)")
    p.add_argument("--runs", action="append", type=_runs_option, default=[], metavar="BLOCK=FOLDER",
                   help="read a block's runs from FOLDER (defaults: "
                        + ", ".join(f"{n}={d}" for n, (d, _) in BLOCKS.items()) + ")")
    a = p.parse_args(argv)
    runs_dirs = dict(a.runs)
    try:
        for name, folder in runs_dirs.items():
            if not resolve_dir(folder).is_dir():
                raise WbcError(f"run folder {folder} (block {name}) does not exist")
        changed = update(a.readme, runs_dirs)
    except WbcError as e:
        print(f"wbcbench: error: {e}", file=sys.stderr)
        return 2
    print(f"{a.readme}: verdict blocks {'rewritten' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
