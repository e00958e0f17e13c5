"""The report of a comparison: ``report.md``, ``results.json`` and the plots.

``results.json`` is :class:`sws.records.Results`: one record per depth, width and method (``depth``,
``width``, ``method``, ``params``, ``init_top1`` before fine-tuning, ``top1`` per epoch, training
``images``, ``flops``, ``seconds`` and how the Des-Net was initialized), the budget study's longer
runs (``budget``), the source models (teacher, Aux-Nets, ancestry, pre-trained models of every size)
with their training cost, and what each method stores (``stored_params``) and spends on the source
data (``pretraining_flops``) to initialize every size. ``report.md`` states the claims that
``sws.analysis`` computes, once per report; ``sws.plots`` draws them. Wall-clock times are in a
table of their own: they vary from run to run, the rest does not.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sws.analysis import Analysis, analyse
from sws.fileio import write_json_atomic, write_text_atomic
from sws.initialization import METHODS
from sws.plots import label_of, plot_top1_vs_epoch, plot_top1_vs_flops, plot_top1_vs_params
from sws.records import Results, RunRecord, as_results


def write_report(results: Results | dict[str, Any], out_dir: str | Path, results_json: bool = True) -> dict[str, Path]:
    """Write ``results.json`` (unless ``results_json`` is false), ``report.md`` and the plots
    (``top1_vs_flops.png`` with a budget study)."""
    results = as_results(results)
    analysis = analyse(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "report": out_dir / "report.md",
        "epochs_plot": out_dir / "top1_vs_epoch.png",
        "params_plot": out_dir / "top1_vs_params.png",
    }
    if results_json:
        paths["results"] = write_json_atomic(out_dir / "results.json", results.to_json())
    plot_top1_vs_epoch(results, paths["epochs_plot"])
    plot_top1_vs_params(results, paths["params_plot"])
    if analysis.budget is not None:
        paths["flops_plot"] = plot_top1_vs_flops(results, out_dir / "top1_vs_flops.png", analysis.budget)
    write_text_atomic(paths["report"], render_report(results, analysis))
    return paths


def render_report(results: Results | dict[str, Any], analysis: Analysis | None = None) -> str:
    results = as_results(results)
    analysis = analysis or analyse(results)
    lines = ["# SWS report", "", _data_line(results), "", "![top-1 against epoch](top1_vs_epoch.png)"]
    lines.append("![final top-1 against parameters](top1_vs_params.png)")
    if analysis.budget:
        lines.append("![top-1 against training FLOPs](top1_vs_flops.png)")
    lines += _sources_section(results)
    lines += _des_net_section(results)
    lines += _versus_section(analysis.versus)
    lines += _finals_section(results)
    lines += _width_section(results, analysis.widths)
    lines += _routes_section(results, analysis.routes)
    lines += _budget_section(analysis.budget)
    lines += _wall_time_section(results)
    return "\n".join(lines) + "\n"


def results_without_timings(results: Results | dict[str, Any]) -> dict[str, Any]:
    """``results`` minus wall-clock seconds: what must be identical between two runs with one seed."""
    clean = copy.deepcopy(results.to_json() if isinstance(results, Results) else results)
    for record in [*clean["records"], *(clean.get("budget") or []), *(clean.get("scratch_to_match") or [])]:
        record.pop("seconds", None)
    for source in clean["sources"].values():
        source.pop("seconds", None)
    return clean


# -- cells --------------------------------------------------------------------------------------


def _flops(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _params(value: int) -> str:
    return f"{value / 1e6:.3f}M" if value >= 1e5 else f"{value:,}"


def _maybe(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _data_name(meta: dict[str, Any]) -> str:
    return f"**{meta.get('data_set')}**" + (f" at `{meta['data_path']}`" if meta.get("data_path") else "")


def _data_line(results: Results) -> str:
    meta = results.meta
    subset = f", a stratified {meta['train_subset']:,} training images" if meta.get("train_subset") else ""
    if meta.get("holdout"):
        subset += f", validated on {meta['holdout']:,} held-out training images (not the validation split)"
    source = meta.get("source")
    learnt = f"; the sources learnt on {_data_name(source)} (run `{source['run_dir']}`)" if source else ""
    return (
        f"Data: {_data_name(meta)}"
        + (f", {meta['input_size']} px" if meta.get("input_size") else "")
        + f"{subset}{learnt}; seed {meta['seed']}; Aux-Net stage layout {meta.get('layout')}; Des-Nets trained "
        f"{results.epochs_by_method()}."
    )


ROLES = {
    "teacher": "teacher",
    "target_teacher": "teacher of the target data",
    "aux": "SWS Aux-Net",
    "tleg_aux": "TLEG Aux-Net",
    "ancestry": "ancestry (full ViT)",
}


def _role(key: str) -> str:
    if key.startswith("aux_w"):
        return f"SWS Aux-Net, width {key[len('aux_w') :]}"
    if key.startswith("pretrained_d"):
        depth, _, width = key[len("pretrained_d") :].partition("_w")
        return f"pre-trained, depth {depth}" + (f", width {width}" if width else "")
    return ROLES.get(key, key)


def _sorted_records(results: Results, records: Sequence[RunRecord]) -> list[RunRecord]:
    order = {m: i for i, m in enumerate(results.meta["methods"])}
    return sorted(records, key=lambda r: (r.width or 0, r.depth, order.get(r.method, 99), r.epochs))


# -- sections -----------------------------------------------------------------------------------


def _sources_section(results: Results) -> list[str]:
    lines = [
        "",
        "## Source models",
        "",
        "| model | role | params | top-1 (%) | epochs | images | training FLOPs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, source in results.sources.items():
        lines.append(
            f"| {source.model} | {_role(key)} | {_params(source.params)} | {source.final_top1:.2f} | "
            f"{source.epochs} | {source.images:,} | {_flops(source.flops)} |"
        )
    return lines


def _des_net_section(results: Results) -> list[str]:
    widths = len(results.meta.get("widths") or []) > 1
    lines = [
        "",
        "## Des-Nets",
        "",
        "Top-1 (%) before fine-tuning (as initialized), after the first epoch and after the last.",
        "",
        ("| width " if widths else "")
        + "| depth | method | params | initialized | epoch 1 | epochs | final | images | training FLOPs |",
        ("|---:" if widths else "") + "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in _sorted_records(results, results.records):
        width = f"| {r.width} " if widths else ""
        lines.append(
            f"{width}| {r.depth} | {label_of(r.method)} | {_params(r.params)} | {_maybe(r.init_top1)} | "
            f"{r.top1[0]:.2f} | {r.epochs} | {r.final_top1:.2f} | {r.images:,} | {_flops(r.flops)} |"
        )
    return lines


def _versus_section(versus: list[dict[str, Any]]) -> list[str]:
    if not versus:
        return []
    wins = sum(r["margin_same_epochs"] > 0 for r in versus)
    early = sum(r["margin_first_vs_scratch_last"] > 0 for r in versus)
    same = _one_or_n({r["same_epochs"] for r in versus})
    last = _one_or_n({r["scratch_epochs"] for r in versus})
    longer = any(r["sws_epochs"] > r["same_epochs"] for r in versus)
    lines = [
        "",
        "## SWS against scratch",
        "",
        f"SWS beats scratch after the same {same} epochs at **{wins} of {len(versus)}** depths, and after a "
        f"single epoch it beats scratch's epoch-{last} top-1 at **{early} of {len(versus)}**.",
        "",
        f"| depth | SWS epoch 1 | SWS epoch {same} | "
        + ("SWS final (epochs) | " if longer else "")
        + f"scratch epoch {same} | margin, same epochs | margin, SWS epoch 1 vs scratch epoch {last} |",
        "|---:|---:|---:|---:|---:|---:|" + ("---:|" if longer else ""),
    ]
    for r in versus:
        final = f"{r['sws_last']:.2f} ({r['sws_epochs']}) | " if longer else ""
        at = "" if same != "n" else f" ({r['same_epochs']})"  # each depth's own count when they differ
        lines.append(
            f"| {r['depth']} | {r['sws_first']:.2f} | {r['sws_at_same']:.2f}{at} | {final}{r['scratch_at_same']:.2f} | "
            f"{r['margin_same_epochs']:+.2f} | {r['margin_first_vs_scratch_last']:+.2f} |"
        )
    return lines


def _one_or_n(values: set[int]) -> str:
    """One number when every depth shares it, else ``n`` (each row then gives its own)."""
    return str(next(iter(values))) if len(values) == 1 else "n"


def _finals_section(results: Results) -> list[str]:
    """Final top-1 of every method side by side, at the Aux-Net's width, when a method other than SWS
    and scratch is compared (SWS against pre-training every size, TLEG, selection...)."""
    methods = results.meta["methods"]
    if set(methods) <= {"sws", "scratch"}:
        return []
    cells = {m: results.des_nets(m) for m in methods}
    against = "pretrain-finetune" if "pretrain-finetune" in methods and "sws" in methods else None
    lines = [
        "",
        "## Final top-1 by method",
        "",
        "| depth | " + " | ".join(label_of(m) for m in methods) + (" | SWS - pre-trained |" if against else " |"),
        "|---:|" + "---:|" * (len(methods) + bool(against)),
    ]
    for depth in results.meta["depths"]:
        row = [_maybe(cells[m][depth].final_top1 if depth in cells[m] else None) for m in methods]
        if against:
            a, b = cells["sws"].get(depth), cells[against].get(depth)
            row.append(f"{a.final_top1 - b.final_top1:+.2f}" if a and b else "-")
        lines.append(f"| {depth} | " + " | ".join(row) + " |")
    return lines


def _width_section(results: Results, rows: list[dict[str, Any]]) -> list[str]:
    if len(results.meta.get("widths") or []) < 2 or not rows:
        return []
    per_width = any(r["per_width"] is not None for r in rows)
    lines = [
        "",
        "## Des-Nets of other widths from one learngene",
        "",
        f"The width-{results.base_width} learngene grown (replicated, function-preserving at integer multiples) "
        "or shrunk (selected) to each width; `own width` is the same depth at the learngene's width.",
        "",
        "| width | depth | params | SWS initialized | own width initialized | SWS final | own width final | "
        "scratch final | SWS - scratch |" + (" SWS, Aux-Net at this width |" if per_width else ""),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if per_width else ""),
    ]
    for r in rows:
        margin = f"{r['sws'] - r['scratch']:+.2f}" if r["scratch"] is not None else "-"
        cells = [str(r["width"]), str(r["depth"]), _params(r["params"]), _maybe(r["sws_init"])]
        cells += [_maybe(r["own_width_init"]), f"{r['sws']:.2f}", _maybe(r["own_width"]), _maybe(r["scratch"]), margin]
        if per_width:
            cells.append(_maybe(r["per_width"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _routes_section(results: Results, rows: list[dict[str, Any]]) -> list[str]:
    """What each route stores and pre-trains on the source data to initialize every size."""
    if not rows:
        return []
    grid = ", ".join(map(str, results.meta["depths"]))
    widths = results.meta.get("widths") or [results.base_width]
    where = f"depth ({grid})" if len(widths) < 2 else f"depth ({grid}) and width ({', '.join(map(str, widths))})"
    pretrained = any(r["pretraining_flops"] for r in rows)
    teacher = results.sources.get("teacher")
    lines = [
        "",
        "## Parameters stored to initialize every size",
        "",
        f"Keeping one trained model per {where} stores {rows[0]['every_size']:,} parameters."
        + (
            " Pre-training is the training FLOPs each route spends on the source data before its Des-Nets train "
            "(an Aux-Net with its teacher's forward passes; a model of every size)"
            + (f"; training the teacher cost {_flops(teacher.flops)}FLOPs more, in no route." if teacher else ".")
            if pretrained
            else ""
        ),
        "",
        "| method | stores | parameters | Des-Nets' total / stored |" + (" pre-training FLOPs |" if pretrained else ""),
        "|---|---|---:|---:|" + ("---:|" if pretrained else ""),
    ]
    for r in rows:
        ratio = f"{r['every_size'] / r['stored']:.1f}x" if r["stored"] else "-"
        stores = METHODS[r["method"]].stores if r["method"] in METHODS else ""
        flops = r["pretraining_flops"]
        cell = f" {_flops(flops)} |" if flops else (" 0 |" if flops == 0 else " - |")
        lines.append(
            f"| {label_of(r['method'])} | {stores} | {r['stored']:,} | {ratio} |" + (cell if pretrained else "")
        )
    return lines + _route_ratios(rows)


def _route_ratios(rows: list[dict[str, Any]]) -> list[str]:
    """SWS against pre-training every size: how many times fewer parameters and FLOPs."""
    by = {r["method"]: r for r in rows}
    sws, every = by.get("sws"), by.get("pretrain-finetune")
    if not (sws and every and sws["stored"] and sws["pretraining_flops"]):
        return []
    return [
        "",
        f"SWS against pre-training every size: **{every['stored'] / sws['stored']:.1f}x** fewer parameters stored "
        f"and **{(every['pretraining_flops'] or 0) / sws['pretraining_flops']:.2f}x** fewer pre-training FLOPs "
        f"({_flops(sws['pretraining_flops'])} against {_flops(every['pretraining_flops'] or 0)}).",
    ]


def _budget_section(study: dict[str, Any] | None) -> list[str]:
    if study is None:
        return []
    rows = study["per_depth"]
    reached = sum(r["sws_epochs_to_match"] is not None for r in rows)
    lines = [
        "",
        "## Training cost at matched accuracy",
        "",
        f"Scratch trained with its full budget at depths {', '.join(map(str, study['depths']))}; SWS fine-tuned until "
        "it reaches scratch's final top-1. The SWS route is the Aux-Net once "
        f"({_flops(study['aux_flops'])}FLOPs, its teacher's forward passes included) plus every fine-tune up to its "
        f"match ({_flops(study['fine_tune_flops'])}FLOPs): **{_flops(study['sws_flops'])}FLOPs**; the scratch route "
        f"is every full run: **{_flops(study['scratch_flops'])}FLOPs**. SWS reaches full-budget scratch at "
        f"**{reached} of {len(rows)}** depths, {_cost_verdict(study)}."
        + ("" if study["matched_everywhere"] else " Where SWS never reached scratch, its whole fine-tune is counted.")
        + f" Training the teacher cost {_flops(study['teacher_flops'])}FLOPs more, counted in neither route (the "
        "paper does not count it).",
    ]
    if study["break_even_depths"] is not None:
        lines.append(
            f"Each depth saves the scratch route's run minus SWS's fine-tune, so the Aux-Net pays for itself from "
            f"about **{study['break_even_depths']:.1f} Des-Net sizes** on, if these depths are typical."
        )
    if study["ratio_at_sws_top1"] is not None:
        lines.append(
            f"Matched the other way, at SWS's final top-1: scratch reaches it after "
            f"{', '.join(str(r['scratch_epochs_to_reach_sws']) for r in rows)} of its epochs "
            f"({_flops(study['scratch_flops_to_reach_sws'])}FLOPs in all) against the Aux-Net plus SWS's whole "
            f"fine-tunes; scratch : SWS = **{study['ratio_at_sws_top1']:.2f}**."
        )
    return lines + _budget_table(rows) + _longer_scratch_lines(study["longer_scratch"])


def _cost_verdict(study: dict[str, Any]) -> str:
    ratio = study["ratio"]
    if not study["matched_everywhere"]:  # no cost at matched accuracy this way round: say what the ratio compares
        return f"so this is not a cost at matched accuracy: scratch : SWS = {ratio:.2f}, " + (
            "the SWS route cheaper but ending below scratch"
            if ratio >= 1
            else "the SWS route costs **more** and ends below scratch"
        )
    if ratio >= 1:
        return f"and the SWS route costs **{ratio:.2f}x less**"
    return f"and the SWS route costs **more** (scratch : SWS = {ratio:.2f})"


def _budget_table(rows: list[dict[str, Any]]) -> list[str]:
    kd = any(r["scratch_kd_top1"] is not None for r in rows)
    lines = [
        "",
        "| depth | scratch epochs | scratch final top-1 | "
        + ("scratch with distillation | " if kd else "")
        + "SWS epoch 1 | SWS final | SWS epochs to reach scratch | SWS FLOPs to reach it | scratch FLOPs | "
        "scratch epochs to reach SWS |",
        "|---:|---:|---:|" + ("---:|" if kd else "") + "---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        matched = r["sws_epochs_to_match"]
        share = f"{matched / r['scratch_epochs']:.0%} of scratch's" if matched else ""
        to_match = f"{matched} of {r['sws_epochs_run']} ({share})" if matched else f"not in {r['sws_epochs_run']}"
        lines.append(
            f"| {r['depth']} | {r['scratch_epochs']} | {r['scratch_top1']:.2f} | "
            + (f"{_maybe(r['scratch_kd_top1'])} | " if kd else "")
            + f"{r['sws_first_epoch_top1']:.2f} | {r['sws_top1']:.2f} | {to_match} | "
            f"{_flops(r['sws_flops_to_match'])} | {_flops(r['scratch_flops'])} | "
            f"{r['scratch_epochs_to_reach_sws'] or 'not in ' + str(r['scratch_epochs'])} |"
        )
    return lines


def _longer_scratch_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Is the full budget full? Scratch trained twice as long, against its full-budget run."""
    lines = []
    for r in rows:
        verdict = (
            "the full budget is short: scratch was still improving, so the ratios above flatter SWS"
            if r["gain"] > 0.5
            else "scratch had about stopped improving: the full budget is full"
        )
        lines.append(
            f"Is the budget full? At depth {r['depth']}, scratch trained {r['epochs']} epochs ends at {r['top1']:.2f}% "
            f"against {r['full_top1']:.2f}% after {r['full_epochs']} ({r['gain']:+.2f} points; its own run stood at "
            f"{r['top1_at_full']:.2f}% after {r['full_epochs']}): {verdict}."
        )
    return ["", *lines] if lines else []


def _wall_time_section(results: Results) -> list[str]:
    base = results.base_width
    lines = [
        "",
        "## Wall time",
        "",
        "Seconds of training on this machine (they vary from run to run; everything above does not).",
        "",
        "| run | seconds |",
        "|---|---:|",
    ]
    for key, source in results.sources.items():
        lines.append(f"| {_role(key)} | {source.seconds:.1f} |")
    longer = [run for run in results.budget if run not in results.records]  # a shared run is listed once
    for record in [*_sorted_records(results, results.records), *_sorted_records(results, longer)]:
        size = f"depth {record.depth}" + (f", width {record.width}" if record.width not in (base, None) else "")
        lines.append(f"| {size}, {record.method}, {record.epochs} epochs | {record.seconds:.1f} |")
    return lines


__all__: Sequence[str] = ["render_report", "results_without_timings", "write_report"]
