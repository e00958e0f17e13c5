"""The report of a comparison: ``report.md``, ``results.json`` and PNG plots.

``results.json`` holds one record per depth, width and method (``depth``, ``width``, ``method``,
``params``, ``init_top1`` before fine-tuning, ``top1`` per epoch, training ``images``, ``flops``,
``seconds`` and how the Des-Net was initialized), the budget study's longer runs (``budget``), the
source models (teacher, Aux-Nets, ancestry) with their training cost, and the parameters each
method stores. ``report.md`` turns them into the paper's claims, measured on this run:

- per depth and method: parameters, top-1 as initialized, after the first and the last epoch;
- Des-Nets of other widths grown or shrunk from the one learngene, against scratch at their size;
- parameters stored: the learngene against the Des-Nets it initializes (the paper's ~20x);
- the budget study: scratch with its full budget, SWS fine-tuned until it matches, and the total
  training FLOPs of each route at matched accuracy, the Aux-Net counted (the paper's ~6.6x).

Wall-clock times are in a table of their own: they vary from run to run, the rest does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sws.fileio import atomic_path, write_json_atomic, write_text_atomic
from sws.initialization import METHODS


def _label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def _style(method: str) -> str | None:
    return METHODS[method].style if method in METHODS else None


def source_record(summary: dict[str, Any]) -> dict[str, Any]:
    """What the report keeps of a source model's training run."""
    return {
        "model": summary["model"],
        "params": summary["params"],
        "top1": summary["final_top1"],
        "epochs": summary["epochs"],
        "images": summary["train_images"],
        "flops": summary["train_flops"],
        "seconds": summary["train_seconds"],
    }


def write_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``report.md``, ``top1_vs_epoch.png`` and ``top1_vs_params.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out_dir / "results.json",
        "report": out_dir / "report.md",
        "epochs_plot": out_dir / "top1_vs_epoch.png",
        "params_plot": out_dir / "top1_vs_params.png",
    }
    write_json_atomic(paths["results"], results)
    plot_top1_vs_epoch(results, paths["epochs_plot"])
    plot_top1_vs_params(results, paths["params_plot"])
    if budget_study(results) is not None:
        paths["flops_plot"] = plot_top1_vs_flops(results, out_dir / "top1_vs_flops.png")
    write_text_atomic(paths["report"], render_report(results))
    return paths


# -- the claims --------------------------------------------------------------------------------


def _records(results: dict[str, Any], method: str) -> dict[int, dict[str, Any]]:
    return {r["depth"]: r for r in results["records"] if r["method"] == method}


def _at_base_width(results: dict[str, Any]) -> dict[str, Any]:
    """The results restricted to the Aux-Net's own width (all of them for a one-width study)."""
    base = results["meta"].get("base_width")
    records = [r for r in results["records"] if r.get("width") in (None, base)]
    return {**results, "records": records}


def sws_versus_scratch(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per depth, at the Aux-Net's width: SWS against scratch after the same epochs (the shorter
    run's: a recipe may fine-tune SWS longer than its early scratch runs), and after one SWS epoch
    against scratch's last."""
    base = _at_base_width(results)
    sws, scratch = _records(base, "sws"), _records(base, "scratch")
    rows = []
    for depth in sorted(set(sws) & set(scratch)):
        a, b = sws[depth]["top1"], scratch[depth]["top1"]
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


def budget_study(results: dict[str, Any]) -> dict[str, Any] | None:
    """The training cost of the two routes at matched accuracy, from the budget study's runs.

    Per depth, scratch is trained with its full budget and SWS is fine-tuned for longer than the
    recipe; SWS matches when an epoch of its fine-tune reaches scratch's final top-1, and costs the
    FLOPs up to that epoch (its whole run, flagged, when none does). Over all the depths, the SWS
    route is the Aux-Net once plus every fine-tune up to its match; the scratch route is every full
    run. The teacher's training is reported apart (the paper does not count it); a ``scratch-kd``
    run, trained from scratch with distillation from the same teacher, is reported beside scratch.
    """
    runs = results.get("budget") or []
    aux = results["sources"].get("aux")
    by_method = {m: {r["depth"]: r for r in runs if r["method"] == m} for m in ("sws", "scratch", "scratch-kd")}
    depths = sorted(set(by_method["sws"]) & set(by_method["scratch"]))
    if not depths or aux is None:
        return None
    per_depth = [_matched_at(depth, by_method) for depth in depths]
    fine_tunes = sum(row["sws_flops_to_match"] for row in per_depth)
    scratch_total = sum(row["scratch_flops"] for row in per_depth)
    sws_total = aux["flops"] + fine_tunes
    teacher = results["sources"].get("teacher")
    saving = (scratch_total - fine_tunes) / len(depths)
    matched = all(row["sws_epochs_to_match"] is not None for row in per_depth)
    # the other side of matched accuracy: scratch run only until it reaches SWS's final top-1
    scratch_caught_up = all(row["scratch_epochs_to_reach_sws"] is not None for row in per_depth)
    scratch_to_sws = sum(row["scratch_flops_to_reach_sws"] for row in per_depth)
    sws_whole = aux["flops"] + sum(row["sws_flops"] for row in per_depth)
    return {
        "depths": depths,
        "aux_flops": aux["flops"],
        "fine_tune_flops": fine_tunes,
        "sws_flops": sws_total,
        "scratch_flops": scratch_total,
        "teacher_flops": teacher["flops"] if teacher else 0,
        "matched_everywhere": matched,
        "ratio": scratch_total / sws_total,
        "scratch_flops_to_reach_sws": scratch_to_sws if scratch_caught_up else None,
        "ratio_at_sws_top1": scratch_to_sws / sws_whole if scratch_caught_up else None,
        # meaningful only where SWS matched: else its fine-tunes did not buy scratch's accuracy
        "break_even_depths": aux["flops"] / saving if saving > 0 and matched else None,
        "per_depth": per_depth,
    }


def _matched_at(depth: int, by_method: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    sws, scratch = by_method["sws"][depth], by_method["scratch"][depth]
    reached = _first_epoch_reaching(sws, scratch["top1"][-1])
    caught_up = _first_epoch_reaching(scratch, sws["top1"][-1])  # matched the other way round
    kd = by_method["scratch-kd"].get(depth)
    return {
        "depth": depth,
        "scratch_top1": scratch["top1"][-1],
        "scratch_epochs": len(scratch["top1"]),
        "scratch_flops": scratch["flops"],
        "scratch_kd_top1": kd["top1"][-1] if kd else None,
        "sws_top1": sws["top1"][-1],
        "sws_first_epoch_top1": sws["top1"][0],
        "sws_epochs_run": len(sws["top1"]),
        "sws_epochs_to_match": reached,
        "sws_flops_to_match": _flops_until(sws, reached),
        "sws_flops": sws["flops"],
        "scratch_epochs_to_reach_sws": caught_up,
        "scratch_flops_to_reach_sws": _flops_until(scratch, caught_up),
    }


def _first_epoch_reaching(run: dict[str, Any], target: float) -> int | None:
    """The first epoch (from 1) at which ``run``'s top-1 reaches ``target``; None if it never does."""
    return next((epoch for epoch, top1 in enumerate(run["top1"], start=1) if top1 >= target), None)


def _flops_until(run: dict[str, Any], epoch: int | None) -> float:
    """``run``'s training FLOPs up to ``epoch`` (its whole run when None)."""
    epochs = len(run["top1"])
    return run["flops"] / epochs * (epoch or epochs)


def width_grid(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per width and depth: SWS's top-1 before and after fine-tuning, the same depth at the Aux-Net's
    own width, scratch at that size, and (when studied) SWS from an Aux-Net of that width."""
    base = results["meta"].get("base_width")
    cell = {(r.get("width") or base, r["depth"], r["method"]): r for r in results["records"]}
    rows = []
    for width in results["meta"].get("widths") or [base]:
        for depth in results["meta"]["depths"]:
            sws, own = cell.get((width, depth, "sws")), cell.get((base, depth, "sws"))
            scratch, per_width = cell.get((width, depth, "scratch")), cell.get((width, depth, "sws-per-width"))
            if sws is None:
                continue
            rows.append(
                {
                    "width": width,
                    "depth": depth,
                    "params": sws["params"],
                    "sws_init": sws.get("init_top1"),
                    "sws": sws["top1"][-1],
                    "own_width_init": own.get("init_top1") if own else None,
                    "own_width": own["top1"][-1] if own else None,
                    "scratch": scratch["top1"][-1] if scratch else None,
                    "per_width": per_width["top1"][-1] if per_width else None,
                }
            )
    return rows


# -- markdown ----------------------------------------------------------------------------------


def _flops(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _params(value: int) -> str:
    return f"{value / 1e6:.3f}M" if value >= 1e5 else f"{value:,}"


def _epochs_by_method(results: dict[str, Any]) -> str:
    """``6 epochs (scratch, scratch-kd: 3)``: the Des-Nets' epochs, the most common first."""
    by_method: dict[str, set[int]] = {}
    for record in results["records"]:
        by_method.setdefault(record["method"], set()).add(len(record["top1"]))
    spelled = {method: "/".join(map(str, sorted(counts))) for method, counts in by_method.items()}
    if not spelled:
        return f"{results['meta']['des_net_epochs']} epochs"
    values = list(spelled.values())
    common = max(values, key=values.count)
    grouped: dict[str, list[str]] = {}
    for method, value in spelled.items():
        if value != common:
            grouped.setdefault(value, []).append(method)
    others = [f"{', '.join(methods)}: {value}" for value, methods in grouped.items()]
    return f"{common} epochs" + (f" ({'; '.join(others)})" if others else "")


def render_report(results: dict[str, Any]) -> str:
    meta = results["meta"]
    subset = f", a stratified {meta['train_subset']:,} training images" if meta.get("train_subset") else ""
    if meta.get("holdout"):
        subset += f", validated on {meta['holdout']:,} held-out training images (not the validation split)"
    lines = [
        "# SWS report",
        "",
        f"Data: **{meta['data_set']}**"
        + (f" at `{meta['data_path']}`" if meta.get("data_path") else "")
        + (f", {meta['input_size']} px" if meta.get("input_size") else "")
        + f"{subset}; seed {meta['seed']}; Aux-Net stage layout {meta.get('layout')}; Des-Nets trained "
        f"{_epochs_by_method(results)}.",
        "",
        "![top-1 against epoch](top1_vs_epoch.png)",
        "![final top-1 against parameters](top1_vs_params.png)",
    ]
    if budget_study(results):
        lines.append("![top-1 against training FLOPs](top1_vs_flops.png)")
    lines += _sources_section(results)
    lines += _des_net_section(results)
    lines += _versus_section(results)
    lines += _width_section(results)
    lines += _storage_section(results)
    lines += _budget_section(results)
    lines += _wall_time_section(results)
    return "\n".join(lines) + "\n"


ROLES = {"teacher": "teacher", "aux": "SWS Aux-Net", "tleg_aux": "TLEG Aux-Net", "ancestry": "ancestry (full ViT)"}


def _role(key: str) -> str:
    if key.startswith("aux_w"):
        return f"SWS Aux-Net, width {key[len('aux_w') :]}"
    return ROLES.get(key, key)


def _sources_section(results: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Source models",
        "",
        "| model | role | params | top-1 (%) | epochs | images | training FLOPs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, source in results["sources"].items():
        lines.append(
            f"| {source['model']} | {_role(key)} | {_params(source['params'])} | {source['top1']:.2f} | "
            f"{source['epochs']} | {source['images']:,} | {_flops(source['flops'])} |"
        )
    return lines


def _sorted_records(results: dict[str, Any], key: str = "records") -> list[dict[str, Any]]:
    methods = results["meta"]["methods"]
    base = results["meta"].get("base_width")
    order = {m: i for i, m in enumerate(methods)}
    return sorted(
        results.get(key) or [],
        key=lambda r: (r.get("width") or base or 0, r["depth"], order.get(r["method"], 99), len(r["top1"])),
    )


def _init_top1(record: dict[str, Any]) -> str:
    value = record.get("init_top1")
    return f"{value:.2f}" if value is not None else "-"


def _des_net_section(results: dict[str, Any]) -> list[str]:
    widths = len(results["meta"].get("widths") or []) > 1
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
    base = results["meta"].get("base_width")
    for record in _sorted_records(results):
        width = f"| {record.get('width') or base} " if widths else ""
        lines.append(
            f"{width}| {record['depth']} | {_label(record['method'])} | {_params(record['params'])} | "
            f"{_init_top1(record)} | {record['top1'][0]:.2f} | {len(record['top1'])} | {record['top1'][-1]:.2f} | "
            f"{record['images']:,} | {_flops(record['flops'])} |"
        )
    return lines


def _versus_section(results: dict[str, Any]) -> list[str]:
    versus = sws_versus_scratch(results)
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


def _width_section(results: dict[str, Any]) -> list[str]:
    rows = width_grid(results)
    if len(results["meta"].get("widths") or []) < 2 or not rows:
        return []
    base = results["meta"].get("base_width")
    per_width = any(r["per_width"] is not None for r in rows)
    lines = [
        "",
        "## Des-Nets of other widths from one learngene",
        "",
        f"The width-{base} learngene grown (replicated, function-preserving at integer multiples) or shrunk "
        "(selected) to each width; `own width` is the same depth at the learngene's width.",
        "",
        "| width | depth | params | SWS initialized | own width initialized | SWS final | own width final | "
        "scratch final | SWS - scratch |" + (" SWS, Aux-Net at this width |" if per_width else ""),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if per_width else ""),
    ]
    for r in rows:
        margin = f"{r['sws'] - r['scratch']:+.2f}" if r["scratch"] is not None else "-"
        cells = [
            str(r["width"]),
            str(r["depth"]),
            _params(r["params"]),
            _maybe(r["sws_init"]),
            _maybe(r["own_width_init"]),
            f"{r['sws']:.2f}",
            _maybe(r["own_width"]),
            _maybe(r["scratch"]),
            margin,
        ]
        if per_width:
            cells.append(_maybe(r["per_width"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _maybe(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _storage_section(results: dict[str, Any]) -> list[str]:
    stored = results.get("stored_params") or {}
    base = results["meta"].get("base_width")
    sizes = {(r.get("width") or base, r["depth"]): r["params"] for r in results["records"]}
    every_size = sum(sizes.values())
    grid = ", ".join(f"{d}" for d in results["meta"]["depths"])
    widths = results["meta"].get("widths") or [base]
    where = f"depth ({grid})" if len(widths) < 2 else f"depth ({grid}) and width ({', '.join(map(str, widths))})"
    lines = [
        "",
        "## Parameters stored to initialize every size",
        "",
        f"Keeping one trained model per {where} stores {every_size:,} parameters.",
        "",
        "| method | stores | parameters | Des-Nets' total / stored |",
        "|---|---|---:|---:|",
    ]
    for method, count in stored.items():
        ratio = f"{every_size / count:.1f}x" if count else "-"
        stores = METHODS[method].stores if method in METHODS else ""
        lines.append(f"| {_label(method)} | {stores} | {count:,} | {ratio} |")
    return lines


def _budget_section(results: dict[str, Any]) -> list[str]:
    study = budget_study(results)
    if study is None:
        return []
    rows = study["per_depth"]
    reached = sum(r["sws_epochs_to_match"] is not None for r in rows)
    ratio = study["ratio"]
    if not study["matched_everywhere"]:  # no cost at matched accuracy this way round: say what the ratio compares
        cost = f"so this is not a cost at matched accuracy: scratch : SWS = {ratio:.2f}, " + (
            "the SWS route cheaper but ending below scratch"
            if ratio >= 1
            else "the SWS route costs **more** and ends below scratch"
        )
    elif ratio >= 1:
        cost = f"and the SWS route costs **{ratio:.2f}x less**"
    else:
        cost = f"and the SWS route costs **more** (scratch : SWS = {ratio:.2f})"
    verdict = f"SWS reaches full-budget scratch at **{reached} of {len(rows)}** depths, {cost}"
    lines = [
        "",
        "## Training cost at matched accuracy",
        "",
        f"Scratch trained with its full budget at depths {', '.join(map(str, study['depths']))}; SWS fine-tuned until "
        "it reaches scratch's final top-1. The SWS route is the Aux-Net once "
        f"({_flops(study['aux_flops'])}FLOPs, its teacher's forward passes included) plus every fine-tune up to its "
        f"match ({_flops(study['fine_tune_flops'])}FLOPs): **{_flops(study['sws_flops'])}FLOPs**; the scratch route "
        f"is every full run: **{_flops(study['scratch_flops'])}FLOPs**. {verdict}."
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
    kd = any(r["scratch_kd_top1"] is not None for r in rows)
    lines += [
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


def _longer_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The budget study's runs that are not the recipe's own (a recipe run of the same length serves
    the budget study too, and is shown once)."""
    return [run for run in results.get("budget") or [] if run not in results["records"]]


def _wall_time_section(results: dict[str, Any]) -> list[str]:
    base = results["meta"].get("base_width")
    lines = [
        "",
        "## Wall time",
        "",
        "Seconds of training on this machine (they vary from run to run; everything above does not).",
        "",
        "| run | seconds |",
        "|---|---:|",
    ]
    for key, source in results["sources"].items():
        lines.append(f"| {_role(key)} | {source['seconds']:.1f} |")
    longer = {**results, "budget": _longer_runs(results)}
    for record in [*_sorted_records(results), *_sorted_records(longer, "budget")]:
        width = record.get("width") or base
        size = f"depth {record['depth']}" + (f", width {width}" if width != base else "")
        lines.append(f"| {size}, {record['method']}, {len(record['top1'])} epochs | {record['seconds']:.1f} |")
    return lines


# -- plots -------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_top1_vs_epoch(results: dict[str, Any], path: str | Path) -> Path:
    """One panel per depth: top-1 against epoch for every method, at the Aux-Net's width."""
    return _save(epoch_figure(results), path)


def epoch_figure(results: dict[str, Any]) -> Any:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    base = _at_base_width(results)
    depths = results["meta"]["depths"]
    columns = min(4, len(depths))
    rows = (len(depths) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharey=True)
    budget = _longer_runs(results)
    for axis, depth in zip(axes.flat, depths, strict=False):
        for method in results["meta"]["methods"]:
            record = _records(base, method).get(depth)
            if record:
                epochs = range(1, len(record["top1"]) + 1)
                axis.plot(epochs, record["top1"], marker="o", color=_style(method), label=_label(method))
        for longer in (r for r in budget if r["depth"] == depth):
            epochs = range(1, len(longer["top1"]) + 1)
            label = f"{_label(longer['method'])}, {len(longer['top1'])} epochs"
            axis.plot(epochs, longer["top1"], linestyle="--", color=_style(longer["method"]), alpha=0.7, label=label)
        axis.set_title(f"Des-Net, {depth} layers")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(depths) :]:
        axis.axis("off")
    for axis in axes[:, 0]:
        axis.set_ylabel("top-1 (%)")
    _figure_legend(figure, axes)
    figure.suptitle(f"Top-1 against epoch ({results['meta']['data_set']})")
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    return figure


def _figure_legend(figure: Any, axes: Any) -> None:
    legend: dict[str, Any] = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(4, len(legend)), frameon=False)


def plot_top1_vs_params(results: dict[str, Any], path: str | Path) -> Path:
    """Final top-1 against parameter count, one line per method (and width), points labelled by depth."""
    return _save(params_figure(results), path)


WIDTH_MARKERS = "osD^v<>ph*"


def params_figure(results: dict[str, Any]) -> Any:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    base = results["meta"].get("base_width")
    widths = results["meta"].get("widths") or [base]
    for method in results["meta"]["methods"]:
        for marker, width in zip(WIDTH_MARKERS, widths, strict=False):
            records = sorted(
                (r for r in results["records"] if r["method"] == method and (r.get("width") or base) == width),
                key=lambda r: r["params"],
            )
            if not records:
                continue
            x = [r["params"] / 1e6 for r in records]
            y = [r["top1"][-1] for r in records]
            label = _label(method) + (f", width {width}" if len(widths) > 1 else "")
            axis.plot(x, y, marker=marker, color=_style(method), label=label)
            if method == results["meta"]["methods"][0]:  # depth labels once, on the first method's points
                for record, xi, yi in zip(records, x, y, strict=True):
                    axis.annotate(
                        f"L{record['depth']}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8
                    )
    axis.set_xlabel("parameters (millions)")
    axis.set_ylabel(f"final top-1 (%), Des-Nets trained {_epochs_by_method(results)}")
    axis.set_title(f"Final top-1 against size ({results['meta']['data_set']})")
    if len(widths) > 1:
        axis.set_xscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_top1_vs_flops(results: dict[str, Any], path: str | Path) -> Path:
    """The budget study: top-1 against cumulative training FLOPs, one panel per depth, both routes."""
    return _save(flops_figure(results), path)


def flops_figure(results: dict[str, Any]) -> Any:
    """SWS's curve starts at its share of the Aux-Net (the Aux-Net's FLOPs over the budget study's
    depths) and adds each fine-tune epoch; scratch's adds each of its epochs."""
    plt = _pyplot()
    study = budget_study(results)
    depths = study["depths"]
    figure, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.4), squeeze=False, sharey=True)
    runs = results.get("budget") or []
    share = study["aux_flops"] / len(depths)
    for axis, depth in zip(axes.flat, depths, strict=True):
        for run in (r for r in runs if r["depth"] == depth):
            start = share if run["method"] == "sws" else 0.0
            x = [(start + _flops_until(run, epoch)) / 1e12 for epoch in range(1, len(run["top1"]) + 1)]
            axis.plot(x, run["top1"], marker=".", color=_style(run["method"]), label=_label(run["method"]))
        axis.set_title(f"Des-Net, {depth} layers")
        axis.set_xlabel("cumulative training TFLOPs")
        axis.grid(alpha=0.3)
    axes[0, 0].set_ylabel("top-1 (%)")
    _figure_legend(figure, axes)
    figure.suptitle(f"Top-1 against training compute ({results['meta']['data_set']}; SWS includes its Aux-Net share)")
    figure.tight_layout(rect=(0, 0.1, 1, 0.93))
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120)
    finally:
        _pyplot().close(figure)
    return Path(path)


def results_without_timings(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` minus wall-clock seconds: what must be identical between two runs with one seed."""
    import copy

    clean = copy.deepcopy(results)
    for record in [*clean["records"], *(clean.get("budget") or []), *(clean.get("scratch_to_match") or [])]:
        record.pop("seconds", None)
    for source in clean["sources"].values():
        source.pop("seconds", None)
    return clean


__all__: Sequence[str] = [
    "budget_study",
    "render_report",
    "results_without_timings",
    "sws_versus_scratch",
    "width_grid",
    "write_report",
]
