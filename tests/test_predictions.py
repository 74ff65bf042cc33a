"""probe_predictions.npz: round-trip, and refusal of files whose metadata or shapes disagree."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from probeft.results import predictions

CELL = dict(model="m", finetune_task="cola", finetune_head="cls", seed=1, epoch=3)


def _tasks(rng: np.random.Generator) -> list[predictions.TaskPredictions]:
    probes = [(p, layer) for p in ("cls", "mean") for layer in range(3)]
    return [
        predictions.TaskPredictions("bigram_shift", probes, rng.random((6, 13)) < 0.6,
                                    predictions.split_sha256(["a b", "b a"] * 6 + ["c"], [0, 1] * 6 + [0])),
        predictions.TaskPredictions("odd_man_out", probes[:4], rng.random((4, 21)) < 0.6, "f" * 64),
    ]


def test_round_trip_keeps_every_row_and_the_metadata(tmp_path):
    tasks = _tasks(np.random.default_rng(0))
    path = predictions.save_predictions(tmp_path, tasks, **CELL)
    assert path == tmp_path / predictions.PREDICTIONS_FILE
    assert not list(tmp_path.glob(".*.tmp"))  # written via a temporary file and a rename
    loaded = predictions.load_predictions(tmp_path, expect={"model": "m", "seed": 1})
    assert loaded.cell == CELL and list(loaded.tasks) == ["bigram_shift", "odd_man_out"]
    for task in tasks:
        got = loaded.tasks[task.probe_task]
        assert got.probes == task.probes and got.test_sha256 == task.test_sha256
        np.testing.assert_array_equal(got.correct, task.correct)


def test_split_sha256_depends_on_sentences_labels_and_order():
    base = predictions.split_sha256(["a", "b"], [0, 1])
    assert base == predictions.split_sha256(["a", "b"], np.array([0, 1]))
    assert len({base, predictions.split_sha256(["b", "a"], [1, 0]), predictions.split_sha256(["a", "b"], [1, 1])}) == 3


def _rewrite(path, mutate):
    with np.load(path) as archive:
        arrays = {"correct": archive["correct"], "metadata": json.loads(str(archive["metadata"]))}
    mutate(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, correct=arrays["correct"], metadata=np.array(json.dumps(arrays["metadata"])))
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda a: a["metadata"].update(format=99), "format"),
    (lambda a: a["metadata"].pop("seed"), "lacks"),
    (lambda a: a["metadata"]["rows"].pop(), "rows"),
    (lambda a: a.update(correct=a["correct"][:, :1]), "sentences"),
    (lambda a: a["metadata"]["tasks"]["odd_man_out"].update(n_test=5), "past its n_test"),
    (lambda a: a["metadata"]["tasks"].pop("odd_man_out"), "missing from its tasks"),
])
def test_mismatched_metadata_is_refused_naming_the_file(tmp_path, mutate, message):
    path = predictions.save_predictions(tmp_path, _tasks(np.random.default_rng(1)), **CELL)
    _rewrite(path, mutate)
    with pytest.raises(ValueError, match=message) as error:
        predictions.load_predictions(path)
    assert str(path) in str(error.value)


def test_expectations_missing_files_and_bad_input(tmp_path):
    path = predictions.save_predictions(tmp_path, _tasks(np.random.default_rng(2)), **CELL)
    with pytest.raises(ValueError, match="finetune_task is 'cola', expected 'none'"):
        predictions.load_predictions(path, expect={"finetune_task": "none"})
    with pytest.raises(FileNotFoundError, match="probe predictions not found.*elsewhere"):
        predictions.load_predictions(tmp_path / "elsewhere")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        predictions.load_predictions(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="exactly"):
        predictions.save_predictions(tmp_path, _tasks(np.random.default_rng(2)), model="m")
    bad = predictions.TaskPredictions("t", [("cls", 0)], np.ones((1, 3), dtype=np.uint8), "x")
    with pytest.raises(ValueError, match="bool"):
        predictions.save_predictions(tmp_path, [bad], **CELL)


def test_refits_round_trip_and_leave_a_file_without_them_unchanged(tmp_path):
    rng = np.random.default_rng(1)
    tasks = _tasks(rng)
    (tmp_path / "plain").mkdir()
    plain = predictions.save_predictions(tmp_path / "plain", tasks, **CELL)
    with np.load(plain) as archive:
        assert archive.files == ["correct", "metadata"] and "refits" not in str(archive["metadata"])
    tasks[1].refits = rng.random((3, 4, 21)) < 0.5  # odd_man_out only
    (tmp_path / "refits").mkdir()
    loaded = predictions.load_predictions(predictions.save_predictions(tmp_path / "refits", tasks, **CELL))
    assert loaded.tasks["bigram_shift"].refits is None
    np.testing.assert_array_equal(loaded.tasks["odd_man_out"].refits, tasks[1].refits)
    np.testing.assert_array_equal(loaded.tasks["odd_man_out"].correct, tasks[1].correct)
    tasks[0].refits = np.ones((2, 5, 13), dtype=bool)  # 5 probes, the task has 6
    with pytest.raises(ValueError, match="bigram_shift: refits must be bool"):
        predictions.save_predictions(tmp_path / "refits", tasks, **CELL)
