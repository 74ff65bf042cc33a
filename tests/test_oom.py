"""Out-of-memory retries, simulated on the CPU: extraction halves its batch, fine-tuning halves the batch
and doubles the accumulation, and both say so (probeft.core.oom)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_finetune import TOY_CONFIG, _write_toy_sst2  # noqa: E402 - the same toy task

from probeft import finetune
from probeft.core import oom
from probeft.finetune import heads, store
from probeft.probing import extract


def out_of_memory_above(limit: int, counter: list[int] | None = None, after: int = 0):
    """A forward pre-hook raising CUDA's out-of-memory error for batches larger than ``limit``
    (only after ``after`` calls when ``counter`` counts them)."""
    def hook(module, args, kwargs):
        batch = (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]).shape[0]
        if counter is not None:
            counter[0] += 1
            if counter[0] <= after:
                return None
        if batch > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {batch} MiB (simulated)")
        return None
    return hook


def test_extraction_halves_the_batch_until_it_fits_and_features_are_unchanged(tiny_models):
    model, tokenizer = extract.load_for_extraction("tiny-bert-L2", "cpu")
    sentences = [f"the dog number {i} saw {'a very ' * (i % 5)}cat ." for i in range(40)]
    expected = extract.extract_features(model, tokenizer, sentences, batch_size=8, device="cpu", progress=False)
    handle = model.register_forward_pre_hook(out_of_memory_above(8), with_kwargs=True)
    retries: list[oom.BatchRetry] = []
    with pytest.warns(RuntimeWarning, match="out of memory at batch size 32; retrying with 16"):
        got = extract.extract_features(model, tokenizer, sentences, batch_size=32, device="cpu", progress=False,
                                       retries=retries)
    handle.remove()
    assert [(r.batch_size, r.retry_batch_size) for r in retries] == [(32, 16), (16, 8)]
    assert retries[0].stage == "extraction" and "simulated" in retries[0].error
    for pooling in expected:
        np.testing.assert_allclose(got[pooling], expected[pooling], atol=1e-5)


def test_extraction_re_raises_when_one_sentence_does_not_fit(tiny_models):
    model, tokenizer = extract.load_for_extraction("tiny-bert-L2", "cpu")
    handle = model.register_forward_pre_hook(out_of_memory_above(0), with_kwargs=True)
    with pytest.raises(torch.OutOfMemoryError), pytest.warns(RuntimeWarning):
        extract.extract_features(model, tokenizer, ["a b", "c d"], batch_size=2, device="cpu", progress=False)
    handle.remove()
    assert oom.is_out_of_memory(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED: out of memory"))
    assert not oom.is_out_of_memory(RuntimeError("shape mismatch"))


def test_fine_tuning_keeps_the_effective_batch_and_resumes_the_same_run(tmp_path, tiny_models, monkeypatch):
    data_dir = _write_toy_sst2(tmp_path / "data")
    plain = finetune.run_finetune(finetune.FinetuneConfig(**TOY_CONFIG), data_dir, tmp_path / "plain")
    # 512 train sentences / 32 = 16 steps per epoch: the out-of-memory error hits in epoch 2
    calls = [0]
    original = heads.SequenceClassifier.__init__

    def patched(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.register_forward_pre_hook(_training_only(out_of_memory_above(16, calls, after=16)), with_kwargs=True)

    monkeypatch.setattr(heads.SequenceClassifier, "__init__", patched)
    retries: list[oom.BatchRetry] = []
    with pytest.warns(RuntimeWarning, match="32; retrying with 16 x 2 accumulation steps"):
        table = finetune.run_finetune(finetune.FinetuneConfig(**TOY_CONFIG), data_dir, tmp_path / "retried",
                                      retries=retries)
    assert [(r.stage, r.batch_size, r.retry_batch_size, r.gradient_accumulation_steps) for r in retries] == [
        ("finetune", 32, 16, 2)]
    # epoch 1 was trained before the error, at 32 x 1: the same numbers as the run without it
    first = lambda t: t[t["epoch"] == 1].reset_index(drop=True)  # noqa: E731
    assert first(table)["value"].tolist() == first(plain)["value"].tolist()
    assert len(table) == len(plain) and table["value"].iloc[-1] >= 0.9  # and it still learns the toy task
    info = json.loads((tmp_path / "retried" / "epoch-3" / "checkpoint.json").read_text())
    assert (info["signature"]["batch_size"], info["signature"]["gradient_accumulation_steps"]) == (16, 2)
    store.check_same_run(tmp_path / "retried", store.run_signature(finetune.FinetuneConfig(**TOY_CONFIG).resolved()))


def _training_only(hook):
    def wrapped(module, args, kwargs):
        return hook(module, args, kwargs) if module.training else None
    return wrapped


def test_an_odd_fine_tuning_batch_is_not_halved():
    error = torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(torch.OutOfMemoryError):
        oom.retry_record("finetune", error, 7)
    assert oom.retry_record("extraction", error, 7).retry_batch_size == 3
