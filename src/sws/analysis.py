"""The claims of a study, computed from its records: what ``report.md`` states and the plots draw.

- :func:`sws_versus_scratch`: SWS against scratch after the same epochs, and after one SWS epoch;
- :func:`budget_study`: the training cost of the SWS and scratch routes at matched accuracy (the
  paper's ~6.6x), and whether scratch's full budget is full;
- :func:`width_grid`: Des-Nets of other widths grown or shrunk from one learngene;
- :func:`routes`: what each method stores and pre-trains on the source data to initialize every
  size (the paper's ~20x fewer parameters and ~10x less pre-training than pre-training every size).

:func:`analyse` computes them all once for a report. Every function takes
:class:`sws.records.Results` or the mapping of a ``results.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sws.records import Results, RunRecord, as_results

# -- the claims --------------------------------------------------------------------------------


def sws_versus_scratch(results: Results | dict[str, Any]) -> list[dict[str, Any]]:
    """Per depth, at the Aux-Net's width: SWS against scratch after the same epochs (the shorter
    run's: a recipe may fine-tune SWS longer than its early scratch runs), and after one SWS epoch
    against scratch's last."""
    results = as_results(results)
    sws, scratch = results.des_nets("sws"), results.des_nets("scratch")
    rows = []
    for depth in sorted(set(sws) & set(scratch)):
        a, b = sws[depth].top1, scratch[depth].top1
        same = min(len(a), len(b))
        rows.append(
            {
                "depth": depth,
                "same_epochs": same,
                "sws_epochs": len(a),
                "scratch_epochs": len(b),
                "sws_first": a[0],
                "sws_at_same": a[same - 1],
                "sws_last": a[-1],
                "scratch_first": b[0],
                "scratch_at_same": b[same - 1],
                "scratch_last": b[-1],
                "margin_same_epochs": a[same - 1] - b[same - 1],
                "margin_first_vs_scratch_last": a[0] - b[-1],
            }
        )
    return rows


def budget_study(results: Results | dict[str, Any]) -> dict[str, Any] | None:
    """The training cost of the two routes at matched accuracy, from the budget study's runs.

    Per depth, scratch is trained with its full budget and SWS is fine-tuned for longer than the
    recipe; SWS matches when an epoch of its fine-tune reaches scratch's final top-1, and costs the
    FLOPs up to that epoch (its whole run, flagged, when none does). Over all the depths, the SWS
    route is the Aux-Net once plus every fine-tune up to its match; the scratch route is every full
    run. The teacher's training is reported apart (the paper does not count it); a ``scratch-kd``
    run, trained from scratch with distillation from the same teacher, is reported beside scratch,
    and a scratch run twice the full budget (``budget.check_depths``) says whether the budget is full.
    """
    results = as_results(results)
    aux = results.sources.get("aux")
    by_method = _full_budget_runs(results)
    depths = sorted(set(by_method["sws"]) & set(by_method["scratch"]))
    if not depths or aux is None:
        return None
    per_depth = [_matched_at(depth, by_method) for depth in depths]
    fine_tunes = sum(row["sws_flops_to_match"] for row in per_depth)
    scratch_total = sum(row["scratch_flops"] for row in per_depth)
    sws_total = aux.flops + fine_tunes
    teacher = results.sources.get("teacher")
    saving = (scratch_total - fine_tunes) / len(depths)
    matched = all(row["sws_epochs_to_match"] is not None for row in per_depth)
    # the other side of matched accuracy: scratch run only until it reaches SWS's final top-1
    scratch_caught_up = all(row["scratch_epochs_to_reach_sws"] is not None for row in per_depth)
    scratch_to_sws = sum(row["scratch_flops_to_reach_sws"] for row in per_depth)
    sws_whole = aux.flops + sum(row["sws_flops"] for row in per_depth)
    return {
        "depths": depths,
        "aux_flops": aux.flops,
        "fine_tune_flops": fine_tunes,
        "sws_flops": sws_total,
        "scratch_flops": scratch_total,
        "teacher_flops": teacher.flops if teacher else 0,
        "matched_everywhere": matched,
        "ratio": scratch_total / sws_total,
        "scratch_flops_to_reach_sws": scratch_to_sws if scratch_caught_up else None,
        "ratio_at_sws_top1": scratch_to_sws / sws_whole if scratch_caught_up else None,
        # meaningful only where SWS matched: else its fine-tunes did not buy scratch's accuracy
        "break_even_depths": aux.flops / saving if saving > 0 and matched else None,
        "per_depth": per_depth,
        "longer_scratch": _longer_scratch(results, by_method["scratch"]),
    }


def _full_budget_runs(results: Results) -> dict[str, dict[int, RunRecord]]:
    """The budget study's runs by method and depth; of scratch's, the full budget's (the shortest,
    where a check run trains twice as long)."""
    runs: dict[str, dict[int, RunRecord]] = {"sws": {}, "scratch": {}, "scratch-kd": {}}
    for run in sorted(results.budget, key=lambda r: -r.epochs):
        if run.method in runs and run.width in (results.base_width, None):
            runs[run.method][run.depth] = run
    return runs


def _longer_scratch(results: Results, full: dict[int, RunRecord]) -> list[dict[str, Any]]:
    """Scratch runs of twice the full budget (``budget.check_depths``), against the full budget's."""
    rows = []
    for run in results.budget:
        base = full.get(run.depth)
        if run.method == "scratch" and base is not None and run.epochs > base.epochs:
            rows.append(
                {
                    "depth": run.depth,
                    "epochs": run.epochs,
                    "top1": run.final_top1,
                    "full_epochs": base.epochs,
                    "full_top1": base.final_top1,
                    "top1_at_full": run.top1[base.epochs - 1],
                    "gain": run.final_top1 - base.final_top1,
                    "flops": run.flops,
                }
            )
    return rows


def _matched_at(depth: int, by_method: dict[str, dict[int, RunRecord]]) -> dict[str, Any]:
    sws, scratch = by_method["sws"][depth], by_method["scratch"][depth]
    reached = sws.first_epoch_reaching(scratch.final_top1)
    caught_up = scratch.first_epoch_reaching(sws.final_top1)  # matched the other way round
    kd = by_method["scratch-kd"].get(depth)
    return {
        "depth": depth,
        "scratch_top1": scratch.final_top1,
        "scratch_epochs": scratch.epochs,
        "scratch_flops": scratch.flops,
        "scratch_kd_top1": kd.final_top1 if kd else None,
        "sws_top1": sws.final_top1,
        "sws_first_epoch_top1": sws.top1[0],
        "sws_epochs_run": sws.epochs,
        "sws_epochs_to_match": reached,
        "sws_flops_to_match": sws.flops_until(reached),
        "sws_flops": sws.flops,
        "scratch_epochs_to_reach_sws": caught_up,
        "scratch_flops_to_reach_sws": scratch.flops_until(caught_up),
    }


def width_grid(results: Results | dict[str, Any]) -> list[dict[str, Any]]:
    """Per width and depth: SWS's top-1 before and after fine-tuning, the same depth at the Aux-Net's
    own width, scratch at that size, and (when studied) SWS from an Aux-Net of that width."""
    results = as_results(results)
    base = results.base_width
    cell = {(r.width, r.depth, r.method): r for r in results.records}
    rows = []
    for width in results.meta.get("widths") or [base]:
        for depth in results.meta["depths"]:
            sws, own = cell.get((width, depth, "sws")), cell.get((base, depth, "sws"))
            scratch, per_width = cell.get((width, depth, "scratch")), cell.get((width, depth, "sws-per-width"))
            if sws is None:
                continue
            rows.append(
                {
                    "width": width,
                    "depth": depth,
                    "params": sws.params,
                    "sws_init": sws.init_top1,
                    "sws": sws.final_top1,
                    "own_width_init": own.init_top1 if own else None,
                    "own_width": own.final_top1 if own else None,
                    "scratch": scratch.final_top1 if scratch else None,
                    "per_width": per_width.final_top1 if per_width else None,
                }
            )
    return rows


def routes(results: Results | dict[str, Any]) -> list[dict[str, Any]]:
    """Per method: the parameters it stores and the FLOPs it spends on the source data to initialize
    every size of the study, against keeping one trained model per size, and its final top-1 at each
    depth (the Aux-Net's width)."""
    results = as_results(results)
    every_size = sum({(r.width, r.depth): r.params for r in results.records}.values())
    rows = []
    for method, stored in results.stored_params.items():
        finals = {depth: r.final_top1 for depth, r in results.des_nets(method).items()}
        rows.append(
            {
                "method": method,
                "stored": stored,
                "every_size": every_size,
                "pretraining_flops": results.pretraining_flops.get(method),
                "final_top1": finals,
            }
        )
    return rows


@dataclass
class Analysis:
    """Every claim of one report, computed once."""

    versus: list[dict[str, Any]]
    budget: dict[str, Any] | None
    widths: list[dict[str, Any]]
    routes: list[dict[str, Any]]


def analyse(results: Results) -> Analysis:
    return Analysis(sws_versus_scratch(results), budget_study(results), width_grid(results), routes(results))
