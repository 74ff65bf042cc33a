"""The checks ``probeft book`` runs on the built HTML: each defect a reader saw is caught, a clean page passes."""

from __future__ import annotations

import pandas as pd

from probeft import report
from probeft.report import html_checks


def page(body: str) -> str:
    return f"<html><body><main>{body}</main></body></html>"


def test_a_pandas_truncated_table_fails():
    frame = pd.DataFrame({"a": range(100)})
    with pd.option_context("display.max_rows", 10, "display.min_rows", 10):
        cut = frame._repr_html_()  # what a notebook shows: "..." row and a "100 rows x 1 columns" footer
    problems = html_checks.check_page(page(cut))
    assert any("truncated" in p for p in problems)
    assert any("100 rows × 1 columns" in p for p in problems)


def test_a_table_view_is_complete_and_passes():
    frame = pd.DataFrame({"a": range(100), "b": ["x"] * 100})
    shown = report.show_table(frame, title="Every check", csv_name="checks.csv")._repr_html_()
    assert html_checks.check_page(page(shown)) == []
    assert shown.count("<tr") == 101  # header + every row
    assert "<details>" in shown and "Download checks.csv" in shown and "overflow-x: auto" in shown


def test_a_figure_without_caption_fails_and_one_with_passes():
    bare = '<div class="cell_output"><img src="a.png"></div>'
    assert html_checks.check_page(page(bare)) == ["a figure without a caption (a.png)"]
    assert html_checks.check_page(page(bare), captions=False) == []
    captioned = ('<h1>Selectivity</h1><figure><div class="cell_output"><img src="a.png"></div>'
                 '<figcaption><p><span class="caption-text">Selectivity per layer.</span></p></figcaption></figure>')
    assert html_checks.check_page(page(captioned)) == []
    empty = '<figure><img src="a.png"><figcaption> </figcaption></figure>'
    assert html_checks.check_page(page(empty)) == ["a figure without a caption"]


def test_a_caption_number_must_be_its_heading_number():
    def figure(number_span: str, text: str) -> str:
        return (f'<figure><img src="a.png"><figcaption><p>{number_span}'
                f'<span class="caption-text">{text}</span></p></figcaption></figure>')

    clash = '<h1>Figure 4: CLS pooling</h1>' + figure('<span class="caption-number">Fig. 2 </span>', "Delta.")
    (problem,) = html_checks.check_page(page(clash))
    assert "figure 2" in problem and "[4]" in problem
    wrong_text = '<h2>Figures 4 and 5</h2>' + figure("", "Figure 3: Delta per layer.")
    assert len(html_checks.check_page(page(wrong_text))) == 1
    right = '<h1>Tables 2 and 5, Figures 4 and 5</h1><h2>Figure 5: mean</h2>' + figure("", "Figure 5: Delta.")
    assert html_checks.check_page(page(right)) == []
    # a table title against its heading
    title = '<h2>Table 5: mean pooling</h2><p class="probeft-table-title"><strong>Table 2: Delta</strong></p>'
    assert len(html_checks.check_page(page(title))) == 1


DEMO_RECORD = {"config": {
    "name": "demo", "description": "Tiny random encoders.", "demo_data": True, "data_dir": "data/demo",
    "models": [{"name": "tiny-bert", "spec": "tiny-bert"}, {"name": "mine", "spec": "/models/x"}],
    "finetune": {"tasks": ["cola", "sst2"], "seeds": [0, 1], "epochs": 3, "learning_rate": 1e-3, "batch_size": 32,
                 "max_train": None, "per_task": {}},
    "probing": {"max_train": 600, "max_eval": 150}, "attention": None,
    "perplexity": {"seeds": [0], "max_blocks": 24, "block_size": 64}}, "data_dir": "data/demo"}


def test_the_banner_names_the_run_and_flags_the_demo():
    banner = report.run_banner(DEMO_RECORD, {"probing__a": {"device": "cpu"}, "probing__b": {"device": "cuda:0"}})
    lines = dict(banner.lines)
    assert lines["Models"] == "tiny-bert, mine (/models/x)"
    assert lines["Caps"] == "probing 600 training sentences per task; probing 150 dev/test sentences per task; " \
                            "perplexity 24 blocks of 64 tokens"
    assert lines["Seeds"] == "fine-tuning 0, 1; perplexity 0" and lines["Device"] == "cpu, cuda:0; 2 cells"
    assert banner.demo and "not the paper" in banner._repr_html_()
    real = report.run_banner({"config": {**DEMO_RECORD["config"], "demo_data": False}}, {})
    assert not real.demo and "not the paper" not in real._repr_html_()


def test_the_table1_note_says_where_the_run_differs_from_the_paper():
    note = report.finetune_differences(DEMO_RECORD["config"])
    assert note.kind == "warning"
    assert note.text == ("This run differs from the paper's setting: learning rate 0.001 (paper 2e-05); "
                         "3 epochs on sst2 (paper 1).")
    paper = {"tasks": ["cola", "sst2"], "epochs": None, "learning_rate": 2e-5, "batch_size": 32, "per_task": {}}
    assert report.finetune_differences({"finetune": paper}).text == "This run used the paper's fine-tuning setting."


def test_a_figure_section_without_its_figure_fails():
    empty = '<section><h2>Figure 4: CLS pooling</h2><div class="cell"></div></section>'
    assert html_checks.check_page(page(empty)) == ["section 'Figure 4: CLS pooling' shows no figure"]
    noted = '<section><h2>Figure 4: CLS pooling</h2><pre>Not in this run: probes.</pre></section>'
    assert html_checks.check_page(page(noted)) == []
    elsewhere = '<p>Not in this run: the committed tables.</p><section><h2>Figure 1: probing</h2></section>'
    assert html_checks.check_page(page(elsewhere)) == []
