"""The report writers: tables, the paper's claims computed from the records, and plots that show them."""

from __future__ import annotations

import copy

import pytest

from sws.analysis import budget_study, sws_versus_scratch, width_grid
from sws.plots import epoch_figure, flops_figure, params_figure
from sws.report import render_report, results_without_timings, write_report


@pytest.fixture
def results():
    def record(depth, method, top1, params, flops):
        return {
            "depth": depth,
            "method": method,
            "params": params,
            "top1": top1,
            "images": 3 * 4000,
            "flops": flops,
            "seconds": 12.5,
            "init": {"method": method},
        }

    return {
        "meta": {
            "data_set": "MNIST5K",
            "data_path": None,
            "input_size": 28,
            "seed": 0,
            "depths": [4, 8],
            "methods": ["sws", "scratch"],
            "des_net_epochs": 3,
            "layout": "3,3,4,3,3",
        },
        "sources": {
            "teacher": {
                "model": "test_resnet",
                "params": 373370,
                "top1": 98.1,
                "epochs": 10,
                "images": 40000,
                "flops": 4e11,
                "seconds": 30.0,
            },
            "aux": {
                "model": "aux_net",
                "params": 254922,
                "top1": 93.0,
                "epochs": 30,
                "images": 120000,
                "flops": 1e13,
                "seconds": 200.0,
            },
        },
        "stored_params": {"sws": 254922, "scratch": 0},
        "records": [
            record(4, "sws", [88.0, 90.0, 91.0], 90000, 1e12),
            record(4, "scratch", [30.0, 45.0, 55.0], 90000, 1e12),
            record(8, "sws", [90.0, 92.0, 93.0], 160000, 2e12),
            record(8, "scratch", [35.0, 80.0, 95.0], 160000, 2e12),
        ],
    }


def test_sws_versus_scratch_margins(results) -> None:
    rows = sws_versus_scratch(results)
    assert [r["depth"] for r in rows] == [4, 8]
    assert rows[0]["margin_same_epochs"] == pytest.approx(36.0)
    assert rows[0]["margin_first_vs_scratch_last"] == pytest.approx(33.0)
    assert rows[1]["margin_same_epochs"] == pytest.approx(-2.0)


def test_sws_fine_tuned_longer_than_scratch_is_compared_after_the_same_epochs(results) -> None:
    results["records"][0]["top1"] = [88.0, 90.0, 91.0, 92.0, 93.0, 94.0]  # SWS 6 epochs, scratch 3
    results["records"][2]["top1"] += [93.5, 94.0, 94.5]
    row = sws_versus_scratch(results)[0]
    assert (row["same_epochs"], row["sws_at_same"], row["sws_last"]) == (3, 91.0, 94.0)
    assert row["margin_same_epochs"] == pytest.approx(36.0)  # SWS's epoch 3 against scratch's, not its 6th
    report = render_report(results)
    assert "Des-Nets trained 6 epochs (scratch: 3)." in report
    assert "| 4 | 88.00 | 91.00 | 94.00 (6) | 55.00 | +36.00 | +33.00 |" in report
    assert "| 4 | SWS (learngene) | 90,000 | - | 88.00 | 6 | 94.00 |" in report


def _run(depth, method, top1, flops, width=None):
    return {"depth": depth, "width": width, "method": method, "params": 90000 * depth // 4, "top1": top1,
            "images": 4000 * len(top1), "flops": flops, "seconds": 1.0, "init": {}}  # fmt: skip


def test_budget_study_counts_sws_until_it_matches_full_budget_scratch(results) -> None:
    scratch4 = [40.0, 60.0, 80.0, 88.0, 90.0, 91.5, 92.0, 93.0, 94.0, 94.5]
    results["budget"] = [
        _run(4, "sws", [88.0, 91.0, 93.0, 94.0, 95.0], 5e12),  # reaches 94.5 at its 5th epoch
        _run(4, "scratch", scratch4, 10e12),
        _run(4, "scratch-kd", [50.0] * 9 + [95.5], 12e12),
        _run(8, "sws", [90.0, 92.0], 4e12),  # never reaches 96
        _run(8, "scratch", [50.0, 96.0], 4e12),
    ]
    study = budget_study(results)
    assert study["depths"] == [4, 8]
    depth4, depth8 = study["per_depth"]
    assert depth4["sws_epochs_to_match"] == 5 and depth4["sws_flops_to_match"] == pytest.approx(5e12)
    assert depth4["scratch_kd_top1"] == 95.5 and depth4["scratch_top1"] == 94.5
    assert depth8["sws_epochs_to_match"] is None and depth8["sws_flops_to_match"] == pytest.approx(4e12)
    assert study["matched_everywhere"] is False
    # SWS: the 1e13 Aux-Net + 5e12 + 4e12 of fine-tunes; scratch: 10e12 + 4e12
    assert study["sws_flops"] == pytest.approx(19e12) and study["scratch_flops"] == pytest.approx(14e12)
    assert study["ratio"] == pytest.approx(14 / 19)
    assert study["break_even_depths"] is None  # SWS did not match at depth 8: no saving to amortize
    results["budget"][3] = _run(8, "sws", [90.0, 96.5], 4e12)
    # now each depth saves (14e12 - 9e12) / 2 = 2.5e12, so the Aux-Net pays off from 4 sizes on
    assert budget_study(results)["break_even_depths"] == pytest.approx(4.0)
    results["budget"][3] = _run(8, "sws", [90.0, 92.0], 4e12)
    text = render_report(results)
    assert (
        "| 4 | 10 | 94.50 | 95.50 | 88.00 | 95.00 | 5 of 5 (50% of scratch's) | 5.00 T | 10.00 T | not in 10 |" in text
    )
    assert "| 8 | 2 | 96.00 | - | 90.00 | 92.00 | not in 2 | 4.00 T | 4.00 T | 2 |" in text
    # the other way round: scratch never reaches SWS's final 95.0 at depth 4, and reaches 92.0 at its 2nd epoch at 8
    assert [r["scratch_epochs_to_reach_sws"] for r in study["per_depth"]] == [None, 2]
    assert study["ratio_at_sws_top1"] is None and "Matched the other way" not in text
    results["budget"][1] = _run(4, "scratch", [90.0, 95.0, 95.5, 96.0], 8e12)  # reaches 95.0 at epoch 2
    # scratch until SWS's top-1: 4e12 at depth 4 and 4e12 at 8; SWS: 1e13 + 5e12 + 4e12
    assert budget_study(results)["ratio_at_sws_top1"] == pytest.approx(8 / 19)
    assert "scratch reaches it after 2, 2 of its epochs (8.00 TFLOPs in all)" in render_report(results)
    results["budget"][1] = _run(4, "scratch", scratch4, 10e12)
    assert "at **1 of 2** depths" in text and "costs **more**" in text
    assert "![top-1 against training FLOPs](top1_vs_flops.png)" in text
    panels = flops_figure(results).axes
    sws_line = next(line for line in panels[0].lines if line.get_label() == "SWS (learngene)")
    # SWS starts at its share of the Aux-Net (1e13 over two depths) and adds 1e12 per epoch
    assert list(sws_line.get_xdata()) == pytest.approx([6.0, 7.0, 8.0, 9.0, 10.0])


def test_width_grid_compares_each_width_with_the_learngenes_own_and_scratch(results) -> None:
    results["meta"].update(widths=[64, 128], base_width=64)
    for record in results["records"]:
        record["width"] = 64
        record["init_top1"] = 80.0 + record["depth"] if record["method"] == "sws" else 10.0
    results["records"] += [
        {**_run(4, "sws", [89.0, 90.5, 91.0], 3e12, width=128), "init_top1": 84.0},
        {**_run(4, "scratch", [20.0, 30.0, 40.0], 3e12, width=128), "init_top1": 9.0},
    ]
    rows = width_grid(results)
    wide = next(r for r in rows if r["width"] == 128)
    assert (wide["sws_init"], wide["own_width_init"], wide["sws"], wide["own_width"], wide["scratch"]) == (
        84.0, 84.0, 91.0, 91.0, 40.0)  # fmt: skip
    text = render_report(results)
    assert "| 128 | 4 | 90,000 | 84.00 | 84.00 | 91.00 | 91.00 | 40.00 | +51.00 |" in text
    assert "| 128 | 4 | SWS (learngene) | 90,000 | 84.00 | 89.00 | 3 | 91.00 |" in text
    # the epoch plot stays at the learngene's width; the size plot has a line per method and width
    labels = {line.get_label() for line in params_figure(results).axes[0].lines}
    assert {"SWS (learngene), width 64", "SWS (learngene), width 128"} <= labels


def test_report_tables_hold_the_numbers(results) -> None:
    text = render_report(results)
    assert "| 4 | SWS (learngene) | 90,000 | - | 88.00 | 3 | 91.00 | 12,000 | 1.00 T |" in text
    assert "| 8 | from scratch | 0.160M | - | 35.00 | 3 | 95.00 | 12,000 | 2.00 T |" in text
    assert "at **1 of 2** depths" in text and "at **1 of 2**." in text
    assert "| SWS (learngene) | the learngene | 254,922 | 1.0x |" in text
    assert "## Training cost at matched accuracy" not in text  # no budget study in these results
    assert "| depth 8, scratch, 3 epochs | 12.5 |" in text


def test_timings_are_the_only_difference_between_reruns(results) -> None:
    other = copy.deepcopy(results)
    for record in other["records"]:
        record["seconds"] = 99.0
    assert results_without_timings(results) == results_without_timings(other)
    strip = lambda text: text.split("## Wall time")[0]  # noqa: E731
    assert strip(render_report(results)) == strip(render_report(other))


def test_plots_draw_the_table(results, tmp_path) -> None:
    results["budget"] = [copy.deepcopy(results["records"][0])]  # the recipe's SWS run serves the budget study
    figure = epoch_figure(results)
    panels = [axis for axis in figure.axes if axis.lines]
    assert [axis.get_title() for axis in panels] == ["Des-Net, 4 layers", "Des-Net, 8 layers"]
    for axis, depth in zip(panels, (4, 8), strict=True):
        curves = {line.get_label(): list(line.get_ydata()) for line in axis.lines}
        expected = {r["method"]: r["top1"] for r in results["records"] if r["depth"] == depth}
        assert curves == {"SWS (learngene)": expected["sws"], "from scratch": expected["scratch"]}
    scatter = params_figure(results).axes[0]
    finals = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in scatter.lines}
    assert finals["SWS (learngene)"] == ([0.09, 0.16], [91.0, 93.0])
    paths = write_report(results, tmp_path)
    for key in ("epochs_plot", "params_plot"):
        data = paths[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert (tmp_path / "report.md").read_text() == render_report(results)
    assert render_report(results).count("| depth 4, sws, 3 epochs |") == 1  # the shared run's time, once


def test_a_scratch_run_twice_the_budget_says_whether_the_budget_is_full(results) -> None:
    results["budget"] = [
        _run(4, "sws", [88.0, 91.0, 93.0], 3e12),
        _run(4, "scratch", [40.0, 60.0, 90.0, 92.0], 4e12),
        _run(4, "scratch", [40.0, 60.0, 85.0, 88.0, 90.0, 91.0, 93.0, 93.2], 8e12),  # budget.check_depths: 2x
    ]
    study = budget_study(results)
    assert study["per_depth"][0]["scratch_epochs"] == 4  # the full budget is the shorter run
    (check,) = study["longer_scratch"]
    assert (check["epochs"], check["full_top1"], check["top1"]) == (8, 92.0, 93.2)
    assert check["gain"] == pytest.approx(1.2) and check["top1_at_full"] == 88.0
    text = render_report(results)
    assert "scratch trained 8 epochs ends at 93.20% against 92.00% after 4 (+1.20 points" in text
    assert "the full budget is short" in text
    results["budget"][2] = _run(4, "scratch", [40.0, 60.0, 85.0, 88.0, 90.0, 91.0, 92.0, 92.3], 8e12)
    assert "the full budget is full" in render_report(results)


def test_each_route_states_what_it_stores_and_pre_trains(results) -> None:
    results["meta"]["methods"] = ["sws", "scratch", "pretrain-finetune"]
    results["stored_params"] = {"sws": 254922, "scratch": 0, "pretrain-finetune": 250000}
    results["pretraining_flops"] = {"sws": 1e13, "scratch": 0.0, "pretrain-finetune": 3e13}
    results["records"] += [
        _run(4, "pretrain-finetune", [85.0, 89.0, 90.5], 1e12),
        _run(8, "pretrain-finetune", [92.0, 93.5], 2e12),
    ]
    text = render_report(results)
    assert "| SWS (learngene) | the learngene | 254,922 | 1.1x | 10.00 T |" in text
    assert "| pre-trained at every size | one pre-trained model per size | 250,000 | 1.1x | 30.00 T |" in text
    assert "SWS against pre-training every size: **1.0x** fewer parameters stored and **3.00x** fewer" in text
    assert "| 4 | 91.00 | 55.00 | 90.50 | +0.50 |" in text  # final top-1 by method, SWS - pre-trained
    assert "training the teacher cost 400.00 GFLOPs more, in no route" in text
