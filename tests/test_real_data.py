"""The readers on the real validation data (skipped when it is absent): counts as published."""

from __future__ import annotations

import pytest

from probeft import data

pytestmark = pytest.mark.shared_data


def test_senteval_subsets(shared_data_dir):
    for task in data.PROBING_TASKS:
        probing = data.read_senteval(data.resolve_probing_file(task, shared_data_dir))
        sizes = (len(probing.train.sentences), len(probing.dev.sentences), len(probing.test.sentences))
        assert sum(sizes) == 11000 and len(probing.label_names) == 2, (task, sizes)


@pytest.mark.parametrize(("task", "train", "dev"), [("cola", 8551, 1043), ("sst2", 67349, 872), ("rte", 2490, 277)])
def test_glue_counts(shared_data_dir, task, train, dev):
    glue = data.read_glue(task, shared_data_dir)
    assert (len(glue.train.labels), len(glue.dev.labels)) == (train, dev)
    assert set(glue.train.labels.tolist()) == {0, 1}


def test_squad_and_wikitext(shared_data_dir):
    train, dev = data.read_squad_splits(shared_data_dir)
    assert (len(train), len(dev)) == (11877, 10570)
    assert all(ex.context[s:s + len(a)] == a for ex in dev[:500] for a, s in zip(ex.answers, ex.answer_starts))
    text, _ = data.read_wikitext_test(shared_data_dir)
    assert text.count("\n") == 4358
