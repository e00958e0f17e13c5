"""The report writers: tables, the paper's claims computed from the records, and plots that show them."""

from __future__ import annotations

import copy

import pytest

from sws.report import (
    epoch_figure,
    params_figure,
    render_report,
    results_without_timings,
    sws_versus_scratch,
    training_cost,
    write_report,
)


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


def test_training_cost_counts_scratch_until_it_matches(results) -> None:
    cost = training_cost(results)
    assert cost["sws_flops"] == pytest.approx(1e13 + 3e12)
    # depth 4: scratch never reaches 91 -> its whole run (1e12); depth 8: reaches 93 at epoch 3 -> 2e12
    assert cost["scratch_is_lower_bound"] is True
    assert cost["per_depth"][0]["scratch_epochs"] is None
    assert cost["per_depth"][1]["scratch_epochs"] == 3
    assert cost["scratch_flops_to_match"] == pytest.approx(3e12)
    assert cost["ratio"] == pytest.approx(3e12 / 13e12)


def test_longer_scratch_runs_give_the_epochs_to_match_and_break_even(results) -> None:
    curve = [40.0, 60.0, 80.0, 88.0, 90.0, 91.5, 92.0, 93.0, 94.0, 94.5]
    results["scratch_to_match"] = [
        {
            "depth": 4,
            "method": "scratch",
            "params": 90000,
            "top1": curve,
            "images": 40000,
            "flops": 10e12,
            "seconds": 40.0,
            "init": {},
        }
    ]
    cost = training_cost(results)
    assert cost["depths"] == [4]  # measured where scratch ran longer
    (depth4,) = cost["per_depth"]
    assert depth4["scratch_epochs"] == 6 and depth4["scratch_epochs_run"] == 10
    assert depth4["scratch_flops"] == pytest.approx(6e12)
    assert cost["scratch_is_lower_bound"] is False
    # scratch: 6e12; SWS: the 1e13 Aux-Net + the 1e12 fine-tune
    assert cost["ratio"] == pytest.approx(6e12 / 11e12)
    # the depth saves 6e12 - 1e12 = 5e12, so the Aux-Net pays off from 2 sizes on
    assert cost["break_even_depths"] == pytest.approx(2.0)
    text = render_report(results)
    assert "| 4 | 91.00 | 1.00 T | 6 of 10 | 6.00 T | 94.50 |" in text
    assert "from about **2.0 Des-Net sizes**" in text


def test_report_tables_hold_the_numbers(results) -> None:
    text = render_report(results)
    assert "| 4 | SWS (learngene) | 90,000 | 88.00 | 91.00 | 12,000 | 1.00 T |" in text
    assert "| 8 | from scratch | 0.160M | 35.00 | 95.00 | 12,000 | 2.00 T |" in text
    assert "at **1 of 2** depths" in text and "at **1 of 2**." in text
    assert "| SWS (learngene) | the learngene | 254,922 | 1.0x |" in text
    assert "needs **more** training compute" in text
    assert "| depth 8, scratch | 12.5 |" in text


def test_timings_are_the_only_difference_between_reruns(results) -> None:
    other = copy.deepcopy(results)
    for record in other["records"]:
        record["seconds"] = 99.0
    assert results_without_timings(results) == results_without_timings(other)
    strip = lambda text: text.split("## Wall time")[0]  # noqa: E731
    assert strip(render_report(results)) == strip(render_report(other))


def test_plots_draw_the_table(results, tmp_path) -> None:
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
