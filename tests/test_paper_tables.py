"""The paper's Tables 2 and 5 beside a run: the transcription format, its checks, and sign agreement."""

from __future__ import annotations

import pytest
from test_results import probing_rows

from probeft import report, results
from probeft.core import paper
from probeft.results import analysis


def test_tables_2_and_5_have_one_cell_per_model_task_probe_pooling_and_group():
    keys = paper.paper_delta_keys()
    assert len(keys) == len(set(keys)) == 3 * 3 * 3 * 2 * 2
    assert keys[0] == ("bert-base-cased", "cola", "bigram_shift", "cls", "lower")
    assert set(paper.TABLES_2_5) <= set(keys)  # whatever is transcribed names a real cell


def write(tmp_path, lines: list[str]):
    path = tmp_path / "deltas.csv"
    path.write_text("\n".join(["model,finetune_task,probe_task,pooling,layer_group,delta", *lines]) + "\n")
    return path


def test_a_transcription_is_read_and_an_empty_delta_means_unreadable(tmp_path):
    path = write(tmp_path, ["roberta-base,cola,bigram_shift,cls,upper,-3.25",
                            "roberta-base,cola,coordination_inversion,cls,upper,"])
    assert paper.read_paper_deltas(path) == {("roberta-base", "cola", "bigram_shift", "cls", "upper"): -3.25}


@pytest.mark.parametrize(("line", "message"), [
    ("gpt2,cola,bigram_shift,cls,upper,1.0", r"deltas.csv:2: unknown cell"),
    ("roberta-base,cola,bigram_shift,cls,upper,abc", r"deltas.csv:2: delta 'abc' is not a number"),
    ("roberta-base,cola,bigram_shift,cls,upper,150", r"deltas.csv:2: delta 150.0 is not in \[-100, 100\]"),
])
def test_a_bad_transcription_line_is_named(tmp_path, line, message):
    with pytest.raises(ValueError, match=message):
        paper.read_paper_deltas(write(tmp_path, [line]))


def test_a_cell_given_twice_or_a_missing_column_is_refused(tmp_path):
    twice = write(tmp_path, ["bert-base-cased,rte,odd_man_out,mean,lower,1", "bert-base-cased,rte,odd_man_out,mean,lower,2"])
    with pytest.raises(ValueError, match=r"deltas.csv:3: cell .* twice"):
        paper.read_paper_deltas(twice)
    bad = tmp_path / "bad.csv"
    bad.write_text("model,delta\nbert-base-cased,1\n")
    with pytest.raises(ValueError, match=r"bad.csv: missing column"):
        paper.read_paper_deltas(bad)


def six_layer_run():
    """A 6-layer model: Delta per layer cls [0, 0, 0, 0, .1, .2, .3] -> lower 0.0, upper +20 points."""
    pre = [0.5] * 7
    tuned = [0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8]
    return results.results_frame(probing_rows("m", "none", "cls", pre) + probing_rows("m", "cola", "cls", tuned))


def test_the_run_is_set_against_the_papers_lower_and_upper_groups_with_sign_agreement():
    cells = {("bert-base-cased", "cola", "bigram_shift", "cls", "upper"): 5.1,
             ("roberta-base", "cola", "bigram_shift", "cls", "upper"): -0.4,
             ("bert-base-cased", "cola", "bigram_shift", "cls", "lower"): 0.3}
    compared = analysis.delta_vs_paper(six_layer_run(), cells, paper.PAPER_MODELS).set_index("layer_group")
    upper, lower = compared.loc["layers 4-6"], compared.loc["layers 0-3"]
    assert upper["delta"] == pytest.approx(20.0) and lower["delta"] == pytest.approx(0.0)
    assert (upper["bert-base-cased"], upper["roberta-base"]) == (5.1, -0.4)
    assert (upper["signs_agree"], upper["paper_cells"]) == (1, 2)  # BERT agrees, RoBERTa does not
    assert (lower["signs_agree"], lower["paper_cells"]) == (0, 1)  # a run Delta of 0 has no sign
    shown = report.paper_delta_table(six_layer_run(), cells, paper.PAPER_MODELS)
    row = shown.xs("layers 4-6", level="layer_group").iloc[0]
    assert row.tolist() == ["20.00", "5.10", "-0.40", "-", "1/2"]


def test_rows_of_tasks_the_paper_did_not_run_can_be_left_out():
    run = six_layer_run()
    assert len(report.paper_delta_table(run, {}, paper.PAPER_MODELS, finetune_tasks=["sst2"])) == 0
    kept = report.paper_delta_table(run, {}, paper.PAPER_MODELS, finetune_tasks=paper.DELTA_FINETUNE_TASKS,
                                    probe_tasks=paper.DELTA_PROBE_TASKS)
    assert len(kept) == 2  # cola x bigram_shift, lower and upper group


def test_without_a_transcription_the_page_says_why_and_shows_dashes():
    shown = report.paper_delta_table(six_layer_run(), {}, paper.PAPER_MODELS)
    assert set(shown["signs agree"]) == {"-"} and set(shown["albert-base-v1"]) == {"-"}
    note = report.paper_delta_note({}, len(paper.paper_delta_keys()), paper.TABLES_2_5_NOTE)
    assert note == paper.TABLES_2_5_NOTE and "not transcribed" in note
    partial = report.paper_delta_note({("bert-base-cased", "cola", "bigram_shift", "cls", "upper"): 1.0}, 108, "X.")
    assert partial.startswith("1 of the paper's 108 cells are transcribed") and partial.endswith("X.")
