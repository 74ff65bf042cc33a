"""What fine-tuning changed inside the encoder (paper Sec. 5): first-token attention entropy and earth
mover's distance (:mod:`~probeft.diagnostics.attention`) and masked-LM perplexity with the pre-trained
head, by epoch and with the top (or bottom) layers restored (:mod:`~probeft.diagnostics.perplexity`); for an
encoder published without that head, a head fitted on the frozen pre-trained encoder (:mod:`~probeft.diagnostics.mlm_head`).

May import: :mod:`probeft.core`, :mod:`probeft.data`, :mod:`probeft.models`, :mod:`probeft.finetune`.
"""
