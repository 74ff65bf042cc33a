"""probeft: fine-tuning and sentence-level probing of pre-trained transformers.

One subpackage per part of the pipeline; each may import only the ones listed before it (its
``__init__`` says which), and a test walks the imports to keep it so:

===============  =============================================================  ==============================
subpackage       holds                                                          may import
===============  =============================================================  ==============================
``core``         atomic files, data-file hashes, devices, names, masked mean,   nothing of probeft
                 metrics, OOM retries, load reports, hub access, paper numbers
``data``         SentEval / GLUE / SQuAD / WikiText readers, data locations,    core
                 generated demo data
``models``       loading by spec and fingerprints, tiny and packaged encoders,  core
                 layer swap
``results``      the tidy results table (cells, provenance, gather), the        core
                 per-sentence predictions, aggregates (Deltas, layer groups)
``verdicts``     bootstrap and McNemar, Delta intervals, CKA, the paper's       core, results
                 claims
``probing``      extraction, feature cache, batched probes, controls, MDL,      core, data, models, results,
                 the probing stage                                              verdicts
``finetune``     config, heads, SQuAD features, task data, checkpoints,         core, data, models, results
                 training
``diagnostics``  attention entropy / EMD, masked-LM perplexity (Sec. 5)         core, data, models, finetune
``report``       book text and tables, figures, committed validation runs       core, results, verdicts
``grid``         YAML schema, cells and seals, cell state, sequential and Dask  everything above
                 runs, CLI
===============  =============================================================  ==============================

Notebooks import short names: ``from probeft import data, models, probing, report, results`` (each
re-exports its main module), and ``from probeft.<subpackage> import <module>`` for the rest.
"""

__version__ = "0.1.0"
