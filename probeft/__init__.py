"""probeft: fine-tuning and sentence-level probing of pre-trained transformers.

One subpackage per part of the pipeline; each may import only the ones listed before it (its
``__init__`` says which), and a test walks the imports to keep it so:

=================  ==================================================================  =====================================
subpackage         holds                                                               may import
=================  ==================================================================  =====================================
``core``           atomic files, data-file hashes, devices, names, masked mean,       nothing of probeft
                   metrics, OOM retries, load reports, hub access, the paper's numbers
``data``           SentEval / GLUE / SQuAD / WikiText readers, data locations,         core
                   generated demo data
``models``         loading by spec and fingerprints, tiny and packaged encoders,       core
                   layer swap
``results``        the tidy results table (cells, provenance, gather), per-sentence    core
                   predictions, aggregates (Deltas, layer groups)
``verdicts``       bootstrap and McNemar, Delta intervals, CKA, the paper's claims     core, results
``probing``        extraction, feature cache, batched probes, controls, MDL, the stage core, data, models, results, verdicts
``finetune``       config, heads, SQuAD features, task data, checkpoints, training     core, data, models, results
``diagnostics``    attention entropy / EMD, masked-LM perplexity (paper Sec. 5)        core, data, models, finetune
``report``         book text and tables, figures, committed validation runs            core, results, verdicts
``grid``           YAML schema, cells, cell state, sequential and Dask runs, CLI       everything above
=================  ==================================================================  =====================================

Notebooks import short names: ``from probeft import data, models, probing, report, results`` (each
re-exports its main module), and ``from probeft.<subpackage> import <module>`` for the rest.
"""

__version__ = "0.1.0"
