"""The plots of a report (PNG, written atomically), drawn from :class:`sws.records.Results`:

- ``top1_vs_epoch.png``: one panel per depth, top-1 against epoch for every method (and the budget
  study's longer runs, dashed), at the Aux-Net's width;
- ``top1_vs_params.png``: final top-1 against parameter count, one line per method and width;
- ``top1_vs_flops.png``: the budget study, top-1 against cumulative training FLOPs, one panel per
  depth, SWS starting at its share of the Aux-Net.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sws.analysis import budget_study
from sws.fileio import atomic_path
from sws.initialization import METHODS
from sws.records import Results, RunRecord, as_results

WIDTH_MARKERS = "osD^v<>ph*"


def label_of(method: str | None) -> str:
    """A method's name in legends and tables."""
    return METHODS[method].label if method in METHODS else str(method)


def _style(method: str | None) -> str | None:
    return METHODS[method].style if method in METHODS else None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_top1_vs_epoch(results: Results | dict[str, Any], path: str | Path) -> Path:
    """One panel per depth: top-1 against epoch for every method, at the Aux-Net's width."""
    return _save(epoch_figure(results), path)


def epoch_figure(results: Results | dict[str, Any]) -> Any:
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    results = as_results(results)
    depths = results.meta["depths"]
    columns = min(4, len(depths))
    rows = (len(depths) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharey=True)
    longer = [run for run in results.budget if run not in results.records]  # a shared run is drawn once
    for axis, depth in zip(axes.flat, depths, strict=False):
        for method in results.meta["methods"]:
            record = results.des_nets(method).get(depth)
            if record:
                axis.plot(_epochs(record), record.top1, marker="o", color=_style(method), label=label_of(method))
        for run in (r for r in longer if r.depth == depth):
            label = f"{label_of(run.method)}, {run.epochs} epochs"
            axis.plot(_epochs(run), run.top1, linestyle="--", color=_style(run.method), alpha=0.7, label=label)
        axis.set_title(f"Des-Net, {depth} layers")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(depths) :]:
        axis.axis("off")
    for axis in axes[:, 0]:
        axis.set_ylabel("top-1 (%)")
    _figure_legend(figure, axes)
    figure.suptitle(f"Top-1 against epoch ({results.meta['data_set']})")
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    return figure


def _epochs(record: RunRecord) -> range:
    return range(1, record.epochs + 1)


def _figure_legend(figure: Any, axes: Any) -> None:
    legend: dict[str, Any] = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(4, len(legend)), frameon=False)


def plot_top1_vs_params(results: Results | dict[str, Any], path: str | Path) -> Path:
    """Final top-1 against parameter count, one line per method (and width), points labelled by depth."""
    return _save(params_figure(results), path)


def params_figure(results: Results | dict[str, Any]) -> Any:
    plt = _pyplot()
    results = as_results(results)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    widths = results.meta.get("widths") or [results.base_width]
    methods = results.meta["methods"]
    for method in methods:
        for marker, width in zip(WIDTH_MARKERS, widths, strict=False):
            records = sorted(results.des_nets(method, width).values(), key=lambda r: r.params)
            if not records:
                continue
            x = [r.params / 1e6 for r in records]
            y = [r.final_top1 for r in records]
            label = label_of(method) + (f", width {width}" if len(widths) > 1 else "")
            axis.plot(x, y, marker=marker, color=_style(method), label=label)
            if method == methods[0]:  # depth labels once, on the first method's points
                for record, xi, yi in zip(records, x, y, strict=True):
                    axis.annotate(f"L{record.depth}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axis.set_xlabel("parameters (millions)")
    axis.set_ylabel(f"final top-1 (%), Des-Nets trained {results.epochs_by_method()}")
    axis.set_title(f"Final top-1 against size ({results.meta['data_set']})")
    if len(widths) > 1:
        axis.set_xscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_top1_vs_flops(
    results: Results | dict[str, Any], path: str | Path, study: dict[str, Any] | None = None
) -> Path:
    """The budget study: top-1 against cumulative training FLOPs, one panel per depth, both routes."""
    return _save(flops_figure(results, study), path)


def flops_figure(results: Results | dict[str, Any], study: dict[str, Any] | None = None) -> Any:
    """SWS's curve starts at its share of the Aux-Net (the Aux-Net's FLOPs over the budget study's
    depths) and adds each fine-tune epoch; scratch's adds each of its epochs."""
    plt = _pyplot()
    results = as_results(results)
    study = study or budget_study(results)
    depths = study["depths"]
    figure, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.4), squeeze=False, sharey=True)
    share = study["aux_flops"] / len(depths)
    for axis, depth in zip(axes.flat, depths, strict=True):
        runs = [r for r in results.budget if r.depth == depth]
        for run in runs:
            start = share if run.method == "sws" else 0.0
            x = [(start + run.flops_until(epoch)) / 1e12 for epoch in _epochs(run)]
            several = sum(r.method == run.method for r in runs) > 1  # the budget check's longer scratch run
            label = label_of(run.method) + (f", {run.epochs} epochs" if several else "")
            axis.plot(x, run.top1, marker=".", color=_style(run.method), label=label)
        axis.set_title(f"Des-Net, {depth} layers")
        axis.set_xlabel("cumulative training TFLOPs")
        axis.grid(alpha=0.3)
    axes[0, 0].set_ylabel("top-1 (%)")
    _figure_legend(figure, axes)
    figure.suptitle(f"Top-1 against training compute ({results.meta['data_set']}; SWS includes its Aux-Net share)")
    figure.tight_layout(rect=(0, 0.1, 1, 0.93))
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120)
    finally:
        _pyplot().close(figure)
    return Path(path)


__all__ = [
    "epoch_figure",
    "flops_figure",
    "label_of",
    "params_figure",
    "plot_top1_vs_epoch",
    "plot_top1_vs_flops",
    "plot_top1_vs_params",
]
