"""The report of a comparison: ``report.md``, ``results.json`` and two PNG plots.

``results.json`` holds one record per depth and method (``depth``, ``method``, ``params``, ``top1``
per epoch, training ``images``, ``flops``, ``seconds`` and how the Des-Net was initialized), the
source models (teacher, Aux-Nets, ancestry) with their training cost, and the parameters each
method stores. ``report.md`` turns them into the paper's claims, measured on this run:

- per depth and method: parameters, top-1 after the first and the last epoch, images, FLOPs;
- parameters stored: the learngene against the Des-Nets it initializes (the paper's ~20x);
- training cost of SWS (the Aux-Net once plus the short fine-tunes) against training each
  Des-Net from scratch to the same accuracy (the paper's ~6.6x).

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
    write_text_atomic(paths["report"], render_report(results))
    return paths


# -- the claims --------------------------------------------------------------------------------


def _records(results: dict[str, Any], method: str) -> dict[int, dict[str, Any]]:
    return {r["depth"]: r for r in results["records"] if r["method"] == method}


def sws_versus_scratch(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per depth: SWS against scratch after the same epochs, and after one SWS epoch against
    scratch's last."""
    sws, scratch = _records(results, "sws"), _records(results, "scratch")
    rows = []
    for depth in sorted(set(sws) & set(scratch)):
        a, b = sws[depth]["top1"], scratch[depth]["top1"]
        rows.append(
            {
                "depth": depth,
                "sws_first": a[0],
                "sws_last": a[-1],
                "scratch_first": b[0],
                "scratch_last": b[-1],
                "margin_same_epochs": a[-1] - b[-1],
                "margin_first_vs_scratch_last": a[0] - b[-1],
            }
        )
    return rows


def training_cost(results: dict[str, Any]) -> dict[str, Any] | None:
    """SWS's training FLOPs against scratch's FLOPs to reach SWS's final accuracy.

    Measured at the depths where the study trained scratch for longer (``scratch_to_match``), or
    else at every depth from the same-epochs scratch runs. Scratch's cost at a depth is the FLOPs up
    to the first epoch whose top-1 reaches SWS's final top-1, or its whole run when none does (a
    lower bound). The Aux-Net is counted once against the depths measured, and
    ``break_even_depths`` says how many Des-Net sizes it takes for the Aux-Net to pay for itself,
    if the measured depths are typical.
    """
    sws, aux = _records(results, "sws"), results["sources"].get("aux")
    longer = {r["depth"]: r for r in results.get("scratch_to_match") or []}
    scratch = longer or _records(results, "scratch")
    depths = sorted(set(sws) & set(scratch))
    if not depths or aux is None:
        return None
    per_depth = []
    for depth in depths:
        target = sws[depth]["top1"][-1]
        curve = scratch[depth]["top1"]
        reached = next((i + 1 for i, top1 in enumerate(curve) if top1 >= target), None)
        cost = scratch[depth]["flops"] / len(curve) * (reached or len(curve))
        per_depth.append(
            {
                "depth": depth,
                "target_top1": target,
                "scratch_epochs_run": len(curve),
                "scratch_epochs": reached,
                "scratch_final_top1": curve[-1],
                "scratch_flops": cost,
                "sws_fine_tune_flops": sws[depth]["flops"],
            }
        )
    fine_tunes = sum(r["sws_fine_tune_flops"] for r in per_depth)
    scratch_total = sum(r["scratch_flops"] for r in per_depth)
    sws_total = aux["flops"] + fine_tunes
    saving = (scratch_total - fine_tunes) / len(per_depth)
    teacher = results["sources"].get("teacher")
    teacher_flops = teacher["flops"] if teacher else 0
    return {
        "depths": depths,
        "aux_flops": aux["flops"],
        "fine_tune_flops": fine_tunes,
        "sws_flops": sws_total,
        "teacher_flops": teacher_flops,
        "scratch_flops_to_match": scratch_total,
        "scratch_is_lower_bound": any(r["scratch_epochs"] is None for r in per_depth),
        "ratio": scratch_total / sws_total,
        "ratio_with_teacher": scratch_total / (sws_total + teacher_flops),
        "break_even_depths": aux["flops"] / saving if saving > 0 else None,
        "per_depth": per_depth,
    }


# -- markdown ----------------------------------------------------------------------------------


def _flops(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _params(value: int) -> str:
    return f"{value / 1e6:.3f}M" if value >= 1e5 else f"{value:,}"


def render_report(results: dict[str, Any]) -> str:
    meta = results["meta"]
    methods = meta["methods"]
    epochs = meta["des_net_epochs"]
    lines = [
        "# SWS report",
        "",
        f"Data: **{meta['data_set']}**"
        + (f" at `{meta['data_path']}`" if meta.get("data_path") else "")
        + (f", {meta['input_size']} px" if meta.get("input_size") else "")
        + f"; seed {meta['seed']}; Aux-Net stage layout {meta.get('layout')}; Des-Nets trained {epochs} epochs.",
        "",
        "![top-1 against epoch](top1_vs_epoch.png)",
        "![final top-1 against parameters](top1_vs_params.png)",
        "",
        "## Source models",
        "",
        "| model | role | params | top-1 (%) | epochs | images | training FLOPs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    roles = {"teacher": "teacher", "aux": "SWS Aux-Net", "tleg_aux": "TLEG Aux-Net", "ancestry": "ancestry (full ViT)"}
    for key, source in results["sources"].items():
        lines.append(
            f"| {source['model']} | {roles.get(key, key)} | {_params(source['params'])} | {source['top1']:.2f} | "
            f"{source['epochs']} | {source['images']:,} | {_flops(source['flops'])} |"
        )
    lines += [
        "",
        "## Des-Nets",
        "",
        "| depth | method | params | top-1 after epoch 1 (%) | top-1 after epoch "
        f"{epochs} (%) | images | training FLOPs |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for record in sorted(results["records"], key=lambda r: (r["depth"], methods.index(r["method"]))):
        lines.append(
            f"| {record['depth']} | {_label(record['method'])} | "
            f"{_params(record['params'])} | {record['top1'][0]:.2f} | {record['top1'][-1]:.2f} | "
            f"{record['images']:,} | {_flops(record['flops'])} |"
        )
    versus = sws_versus_scratch(results)
    if versus:
        wins = sum(r["margin_same_epochs"] > 0 for r in versus)
        early = sum(r["margin_first_vs_scratch_last"] > 0 for r in versus)
        lines += [
            "",
            "## SWS against scratch",
            "",
            f"SWS beats scratch after the same {epochs} epochs at **{wins} of {len(versus)}** depths, and after a "
            f"single epoch it beats scratch's epoch-{epochs} top-1 at **{early} of {len(versus)}**.",
            "",
            f"| depth | SWS epoch 1 | SWS epoch {epochs} | scratch epoch {epochs} | margin, same epochs | "
            f"margin, SWS epoch 1 vs scratch epoch {epochs} |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in versus:
            lines.append(
                f"| {r['depth']} | {r['sws_first']:.2f} | {r['sws_last']:.2f} | {r['scratch_last']:.2f} | "
                f"{r['margin_same_epochs']:+.2f} | {r['margin_first_vs_scratch_last']:+.2f} |"
            )
    lines += _storage_section(results)
    lines += _cost_section(results)
    lines += [
        "",
        "## Wall time",
        "",
        "Seconds of training on this machine (they vary from run to run; everything above does not).",
        "",
        "| run | seconds |",
        "|---|---:|",
    ]
    for key, source in results["sources"].items():
        lines.append(f"| {roles.get(key, key)} | {source['seconds']:.1f} |")
    for record in sorted(results["records"], key=lambda r: (r["depth"], methods.index(r["method"]))):
        lines.append(f"| depth {record['depth']}, {record['method']} | {record['seconds']:.1f} |")
    for record in results.get("scratch_to_match") or []:
        epochs = len(record["top1"])
        lines.append(f"| depth {record['depth']}, scratch, {epochs} epochs | {record['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def _storage_section(results: dict[str, Any]) -> list[str]:
    stored = results.get("stored_params") or {}
    depths = results["meta"]["depths"]
    by_depth = {r["depth"]: r["params"] for r in results["records"]}
    every_size = sum(by_depth[d] for d in depths if d in by_depth)
    lines = [
        "",
        "## Parameters stored to initialize every depth",
        "",
        f"Keeping one trained model per depth ({', '.join(map(str, depths))}) stores {every_size:,} parameters.",
        "",
        "| method | stores | parameters | Des-Nets' total / stored |",
        "|---|---|---:|---:|",
    ]
    for method, count in stored.items():
        ratio = f"{every_size / count:.1f}x" if count else "-"
        stores = METHODS[method].stores if method in METHODS else ""
        lines.append(f"| {_label(method)} | {stores} | {count:,} | {ratio} |")
    return lines


def _cost_section(results: dict[str, Any]) -> list[str]:
    cost = training_cost(results)
    if cost is None:
        return []
    bound = ">= " if cost["scratch_is_lower_bound"] else ""
    where = ("At depth " if len(cost["depths"]) == 1 else "Over depths ") + ", ".join(map(str, cost["depths"]))
    if cost["ratio"] >= 1:
        verdict = f"SWS needs **{bound}{cost['ratio']:.2f}x less** training compute"
    else:
        verdict = f"SWS needs **more** training compute than scratch here (scratch : SWS = {bound}{cost['ratio']:.2f})"
    lines = [
        "",
        "## Training cost for the same accuracy",
        "",
        f"{where}: SWS is the Aux-Net once ({_flops(cost['aux_flops'])}FLOPs, its teacher's forward passes "
        f"included) plus the fine-tunes ({_flops(cost['fine_tune_flops'])}FLOPs), **{_flops(cost['sws_flops'])}"
        f"FLOPs**; scratch, trained until it reaches SWS's final top-1, needs **{bound}"
        f"{_flops(cost['scratch_flops_to_match'])}FLOPs**. {verdict} ({bound}{cost['ratio_with_teacher']:.2f} "
        f"with the teacher's own training, {_flops(cost['teacher_flops'])}FLOPs, counted too).",
    ]
    if cost["break_even_depths"] is not None:
        saving = (cost["scratch_flops_to_match"] - cost["fine_tune_flops"]) / len(cost["depths"])
        lines.append(
            f"Each depth saves {_flops(saving)}FLOPs on average, so the Aux-Net pays for itself from about "
            f"**{cost['break_even_depths']:.1f} Des-Net sizes** on, if the depths measured here are typical "
            "(the paper initializes 10 sizes per learngene)."
        )
    if cost["scratch_is_lower_bound"]:
        lines.append(
            "Where scratch never reached SWS's accuracy its whole run is counted, so scratch's cost is a lower bound."
        )
    lines += [
        "",
        "| depth | SWS final top-1 | SWS fine-tune FLOPs | scratch epochs to reach it | scratch FLOPs counted | "
        "scratch top-1 at its last epoch |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in cost["per_depth"]:
        reached = (
            f"{row['scratch_epochs']} of {row['scratch_epochs_run']}"
            if row["scratch_epochs"]
            else f"not in {row['scratch_epochs_run']}"
        )
        lines.append(
            f"| {row['depth']} | {row['target_top1']:.2f} | {_flops(row['sws_fine_tune_flops'])} | {reached} | "
            f"{_flops(row['scratch_flops'])} | {row['scratch_final_top1']:.2f} |"
        )
    return lines


# -- plots -------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_top1_vs_epoch(results: dict[str, Any], path: str | Path) -> Path:
    """One panel per depth: top-1 against epoch for every method."""
    return _save(epoch_figure(results), path)


def epoch_figure(results: dict[str, Any]) -> Any:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    depths = results["meta"]["depths"]
    columns = min(4, len(depths))
    rows = (len(depths) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharey=True)
    for axis, depth in zip(axes.flat, depths, strict=False):
        for method in results["meta"]["methods"]:
            record = _records(results, method).get(depth)
            if record:
                epochs = range(1, len(record["top1"]) + 1)
                axis.plot(
                    epochs,
                    record["top1"],
                    marker="o",
                    color=_style(method),
                    label=_label(method),
                )
        longer = next((r for r in results.get("scratch_to_match") or [] if r["depth"] == depth), None)
        if longer:
            epochs = range(1, len(longer["top1"]) + 1)
            axis.plot(
                epochs,
                longer["top1"],
                linestyle="--",
                color=_style("scratch"),
                alpha=0.7,
                label=f"from scratch, {len(longer['top1'])} epochs",
            )
        axis.set_title(f"Des-Net, {depth} layers")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(depths) :]:
        axis.axis("off")
    for axis in axes[:, 0]:
        axis.set_ylabel("top-1 (%)")
    legend = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    figure.suptitle(f"Top-1 against epoch ({results['meta']['data_set']})")
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    return figure


def plot_top1_vs_params(results: dict[str, Any], path: str | Path) -> Path:
    """Final top-1 against parameter count, one line per method, points labelled by depth."""
    return _save(params_figure(results), path)


def params_figure(results: dict[str, Any]) -> Any:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for method in results["meta"]["methods"]:
        records = sorted(_records(results, method).values(), key=lambda r: r["params"])
        if not records:
            continue
        x = [r["params"] / 1e6 for r in records]
        y = [r["top1"][-1] for r in records]
        axis.plot(x, y, marker="o", color=_style(method), label=_label(method))
        if method == results["meta"]["methods"][0]:  # depth labels once, on the first method's points
            for record, xi, yi in zip(records, x, y, strict=True):
                axis.annotate(f"L{record['depth']}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axis.set_xlabel("parameters (millions)")
    axis.set_ylabel(f"top-1 after {results['meta']['des_net_epochs']} epochs (%)")
    axis.set_title(f"Final top-1 against size ({results['meta']['data_set']})")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    _pyplot().close(figure)
    return Path(path)


def results_without_timings(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` minus wall-clock seconds: what must be identical between two runs with one seed."""
    import copy

    clean = copy.deepcopy(results)
    for record in clean["records"]:
        record.pop("seconds", None)
    for source in clean["sources"].values():
        source.pop("seconds", None)
    for record in clean.get("scratch_to_match") or []:
        record.pop("seconds", None)
    return clean


__all__: Sequence[str] = [
    "render_report",
    "results_without_timings",
    "sws_versus_scratch",
    "training_cost",
    "write_report",
]
