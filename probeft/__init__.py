"""probeft: fine-tuning and sentence-level probing of pre-trained transformers.

One module per concern (arrows: what each may import from probeft):

* Foundations, importing nothing of probeft: ``files`` (atomic writes, cache root), ``data_reads``
  (the sha256 of every data file a cell read, for its provenance and the resume check), ``devices``
  (device strings), ``names`` (task / head / pooling names and defaults), ``pooling`` (the masked
  mean), ``checkpoints`` (reading the fine-tuning checkpoint store), ``quiet`` (transformers' load
  reports), ``metrics``, ``paper`` (the paper's numbers).
* Data: ``locations`` (the data-location policy), ``data`` (SentEval, GLUE, SQuAD, WikiText readers),
  ``demo_data`` (generated offline data).
* Models: ``tiny_models`` (tiny random encoders and their word list), ``models`` (loading by spec,
  fingerprints), ``layer_swap`` (replacing top layers, ALBERT's shared layer included).
* Stages: ``extract`` + ``feature_cache`` (features of every layer), ``probe`` + ``probe_lbfgs``
  (batched logistic-regression probes), ``probing`` (the probing stage), ``finetune`` (package:
  config, heads, SQuAD, task data, checkpoint writing, training), ``attention``, ``perplexity``.
* Verdicts: ``uncertainty`` (bootstrap intervals, McNemar), ``predictions`` (per-sentence test
  correctness beside each probing cell), ``delta_intervals`` (paired Delta intervals of a run),
  ``control`` (control tasks for selectivity), ``mdl`` (online-code MDL), ``similarity`` (linear CKA),
  ``claims`` (the paper's findings F1-F9 checked on a run).
* Results: ``results`` (the tidy table store), ``analysis`` (Deltas, layer groups, summaries),
  ``report`` (text and tables for the book), ``plots`` (one function per figure).
* Orchestration: ``grid_config`` (the validated YAML schema), ``cell_state`` (whether a
  complete cell still matches its parameters and data), ``grid`` (cells, papermill, resume), ``cli``.
"""

__version__ = "0.1.0"
