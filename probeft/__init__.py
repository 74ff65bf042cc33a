"""probeft: fine-tuning and sentence-level probing of pre-trained transformers.

One module per concern (see ``DESIGN.md`` in the README):
``data`` (readers), ``demo_data`` (generated offline data), ``models`` (loading, tiny models),
``extract`` (features), ``probe`` (batched logistic-regression probes), ``finetune``,
``attention``, ``perplexity``, ``results`` (tidy tables), ``plots``, ``grid`` / ``cli``.
"""

__version__ = "0.1.0"
