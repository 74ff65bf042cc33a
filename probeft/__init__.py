"""probeft: fine-tuning and sentence-level probing of pre-trained transformers.

One module per concern: ``data`` (readers), ``demo_data`` (generated offline data), ``models``
(loading, tiny models, layer replacement), ``extract`` (features and their cache), ``probe``
(batched logistic-regression probes), ``probing`` (the probing stage), ``finetune`` and
``metrics``, ``attention``, ``perplexity``, ``results`` (tidy tables), ``plots``, ``paper`` (the
paper's numbers), ``grid`` / ``cli`` (papermill grid and book).
"""

__version__ = "0.1.0"
