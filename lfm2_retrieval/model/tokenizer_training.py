"""Train a byte-level BPE tokenizer with LFM2's special tokens, saved as a Hugging Face tokenizer.

Used when no LFM2 `tokenizer.json` is given (the real one cannot be downloaded here). Byte-level
BPE covers every script without unknown tokens; the ColBERT prefixes become single tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

PAD, BOS, EOS = "<|pad|>", "<|startoftext|>", "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# Same order and ids as LFM2's vocabulary for the tokens we use.
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START, IM_END]
QUERY_PREFIX, DOCUMENT_PREFIX = "[Q] ", "[D] "


def train_byte_level_bpe(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: str | Path,
    prefixes: tuple[str, ...] = (QUERY_PREFIX, DOCUMENT_PREFIX),
    min_frequency: int = 2,
) -> Tokenizer:
    """Train, then save `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`.

    The post-processor prepends BOS, as LFM2's tokenizer does.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    if prefixes:
        tokenizer.add_tokens(list(prefixes))
    save_tokenizer(tokenizer, out_dir)
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, out_dir: str | Path) -> None:
    """The three files `transformers.AutoTokenizer` (and so PyLate) reads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 1_000_000,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        **special,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
