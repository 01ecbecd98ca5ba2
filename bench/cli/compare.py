"""`bench compare RUN_A RUN_B [RUN_C ...]`: patient-level paired tests of each run against the first.

Each case (patient) is one pair: its mean over the classes both runs scored. The table gives the numbers a
reviewer asks for: cases, classes and datasets behind the test, both means, the difference with its 95%
bootstrap interval (cases resampled within datasets), the rank-biserial effect size, the Wilcoxon statistic, the
p-value and the Holm-adjusted p-value over every test in the table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer

from bench.cli.tables import METRIC_HELP, POLICY_HELP, EmptyPolicy, echo_notes
from bench.views.runs import load_runs
from bench.views.tables import UNSCALED, markdown_cell
from protocols.class_metrics import view_columns
from protocols.stats import holm, paired_tests, per_class_tests
from protocols.errors import BenchError


def compare_output(
    run_dirs: list[Path], per_class: bool = False, seed: int = 0, n_boot: int = 2000, empty_policy: str | None = None,
    metric: str = "both",
) -> tuple[str, list[str]]:
    """(the Markdown table of tests, notes); ``metric`` as `bench tables --metric`."""
    metrics = view_columns(metric)
    if len(run_dirs) < 2:
        raise BenchError("compare needs at least two runs: the first is the reference A")
    runs = [load_runs([path], empty_policy) for path in run_dirs]
    a = runs[0]
    notes = [f"A = {run_dirs[0]}"]
    if per_class:
        parts = []
        for path, b in zip(run_dirs[1:], runs[1:]):
            for name in metrics:
                table = per_class_tests(a.rows, b.rows, name).assign(run=str(path), metric=name)
                parts.append(table)
        table = pd.concat(parts, ignore_index=True)
        table["p_holm"] = holm(table["p_value"].to_numpy())
        head = "| B | metric | class | cases | A | B | B-A | r | W | p | p (Holm) |\n"
        head += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        body = "".join(
            f"| {markdown_cell(r.run)} | {r.metric} | {markdown_cell(r.key)} | {r.cases} | {_scale(r.metric) * r.mean_a:.2f} "
            f"| {_scale(r.metric) * r.mean_b:.2f} | {_scale(r.metric) * r.difference:+.2f} | {r.effect_size:+.2f} "
            f"| {r.statistic:.1f} | {r.p_value:.3g} | {r.p_holm:.3g} |\n" for r in table.itertuples())
        notes.append(f"per class: Wilcoxon signed-rank over the cases both runs scored; Holm correction over all "
                     f"{len(table)} tests")
    else:
        results = paired_tests(a.rows, {str(path): b.rows for path, b in zip(run_dirs[1:], runs[1:])},
                               metrics, np.random.default_rng(seed), n_boot)
        head = ("| B | metric | cases | classes | datasets | A | B | B-A | 95% CI | r | W | p | p (Holm) "
                "| pairs | only A | only B | NaN dropped |\n")
        head += "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        body = "".join(_line(r) for r in results.itertuples())
        notes += [
            ("patient level: each case is one pair, its mean over the classes both runs scored in it; Wilcoxon "
             "signed-rank over cases"),
            ("B-A: mean case difference, datasets averaged first; 95% CI: bootstrap with cases resampled within "
             f"datasets ({n_boot} replicates, seed {seed}); r: rank-biserial effect size (-1..1)"),
            f"p (Holm): Holm correction over the {len(results)} tests of this table",
        ]
        fewest = int(results["cases"].min())
        if fewest < 6:
            notes.append(f"with {fewest} cases the smallest two-sided Wilcoxon p is {2 / 2 ** fewest:.3g}: too few "
                         "patients to show a difference at 0.05, whatever the effect")
    protocols = {str(path): tuple(sorted(set(run.protocol["grid"]))) + tuple(sorted(set(run.protocol["policy"])))
                 for path, run in zip(run_dirs, runs)}
    reference = protocols[str(run_dirs[0])]
    notes += [f"{path} was scored on another grid or empty policy ({', '.join(protocol)}) than A "
              f"({', '.join(reference)}): the difference mixes the protocol with the model"
              for path, protocol in protocols.items() if protocol != reference]
    notes += list(dict.fromkeys(n for run in runs for n in run.notes))
    return head + body, notes


def _scale(metric: str) -> float:
    """Fractions print in percent; distances (mm) and volumes (mm^3) as they are."""
    return 1.0 if metric in UNSCALED else 100.0


def _line(r) -> str:
    k = _scale(r.metric)
    return (f"| {markdown_cell(r.run)} | {r.metric} | {r.cases} | {r.classes} | {r.datasets} | {k * r.mean_a:.2f} "
            f"| {k * r.mean_b:.2f} | {k * r.difference:+.2f} | [{k * r.lo:+.2f}, {k * r.hi:+.2f}] "
            f"| {r.effect_size:+.2f} | {r.statistic:.1f} | {r.p_value:.3g} | {r.p_holm:.3g} | {r.pairs} "
            f"| {r.only_a} | {r.only_b} | {r.dropped_nan} |\n")


def compare_text(run_a: Path, run_b: Path) -> str:
    """The comparison of two runs followed by its notes."""
    text, notes = compare_output([run_a, run_b])
    return text + "".join(f"- {line}\n" for line in notes)


def compare(
    runs: list[Path] = typer.Argument(..., help="Run folders (or metrics.parquet): the first is A, each other is B."),
    per_class: bool = typer.Option(False, "--per-class", help="One test per class (cases as pairs), Holm-adjusted."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap interval of the difference."),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap replicates."),
    empty_policy: EmptyPolicy = typer.Option(None, "--empty-policy", help=POLICY_HELP),
    metric: str = typer.Option("both", "--metric", help=METRIC_HELP),
) -> None:
    """Patient-level paired tests of each run against the first: Wilcoxon over cases, interval, effect size, Holm.

    The table goes to stdout, notes to stderr."""
    text, notes = compare_output(runs, per_class, seed, n_boot, empty_policy, metric)
    typer.echo(text, nl=False)
    echo_notes(notes)
