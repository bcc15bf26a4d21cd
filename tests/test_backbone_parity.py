"""lfm2_core.LFM2Model is the same function as transformers.Lfm2Model (random weights)."""

import pytest
import torch

from lfm2_core import LFM2Config, LFM2Model

pytestmark = pytest.mark.slow  # checks parity against transformers

transformers = pytest.importorskip("transformers")

CONFIGS = {
    "all-conv": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4,
                     num_key_value_heads=4, layer_types=["conv"] * 3),
    "mixed-gqa2-no-ffn-adjust": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=4,
                                     num_attention_heads=4, num_key_value_heads=2,
                                     layer_types=["conv", "full_attention", "conv", "full_attention"],
                                     block_auto_adjust_ff_dim=False),
    "mixed-gqa4-conv-bias-multiplier": dict(hidden_size=96, intermediate_size=288, num_hidden_layers=3,
                                            num_attention_heads=8, num_key_value_heads=2, conv_bias=True,
                                            layer_types=["full_attention", "conv", "conv"],
                                            block_ffn_dim_multiplier=1.5, block_multiple_of=64),
    "all-attention-mqa-kernel4": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=1, conv_L_cache=4,
                                      layer_types=["full_attention", "full_attention"]),
}


def make_pair(shape: dict, seed: int = 0):
    torch.manual_seed(seed)
    hf_config = transformers.Lfm2Config(vocab_size=128, **shape)
    reference = transformers.Lfm2Model(hf_config).eval()
    with torch.no_grad():  # make norm gains and biases non-trivial so they are really tested
        for name, param in reference.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                param.normal_(0, 0.1)
    ours = LFM2Model(LFM2Config.from_dict(hf_config.to_dict()))
    ours.load_state_dict(reference.state_dict())
    return reference, ours.eval()


def right_padded_batch(lengths, width, vocab=128, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids, mask


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_transformers_on_right_padded_batches(name):
    reference, ours = make_pair(CONFIGS[name])
    ids, mask = right_padded_batch([23, 17, 5, 1], 23)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        got = ours(ids, mask)
    real = mask.bool()
    assert (expected[real] - got[real]).abs().max() <= 1e-4
    # Padded positions match too (transformers masks them for batches of two or more);
    # ColBERT query-expansion vectors live there.
    assert (expected - got).abs().max() <= 1e-4


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_transformers_without_padding(name):
    reference, ours = make_pair(CONFIGS[name], seed=3)
    ids, _ = right_padded_batch([9, 9], 9)
    with torch.no_grad():
        expected = reference(input_ids=ids, use_cache=False).last_hidden_state
        got = ours(ids)
    assert (expected - got).abs().max() <= 1e-4


def test_single_row_padding_is_masked_unlike_the_reference():
    """transformers skips pad masking at batch size 1; we mask always, so a padded row gives the
    vectors it gets inside any larger batch (documented in lfm2_core/model.py)."""
    reference, ours = make_pair(CONFIGS["mixed-gqa2-no-ffn-adjust"])
    ids, mask = right_padded_batch([6, 12], 12)
    with torch.no_grad():
        in_batch = reference(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state[0]
        alone = ours(ids[:1], mask[:1])[0]
    assert (in_batch - alone).abs().max() <= 1e-4


@pytest.mark.parametrize("bidirectional", [False, True])
def test_vectors_do_not_depend_on_the_batch(bidirectional):
    config = LFM2Config.from_dict({**CONFIGS["mixed-gqa4-conv-bias-multiplier"], "vocab_size": 128,
                                   "bidirectional": bidirectional})
    torch.manual_seed(0)
    model = LFM2Model(config)
    model.init_weights(seed=0)
    model.eval()
    ids, mask = right_padded_batch([15, 8, 3], 15)
    with torch.no_grad():
        batched = model(ids, mask)
        for row, length in enumerate([15, 8, 3]):
            alone = model(ids[row:row + 1, :length])  # unpadded, on its own
            assert (batched[row, :length] - alone[0]).abs().max() <= 1e-5


def test_bidirectional_mode_sees_the_future_and_causal_does_not():
    shape = {**CONFIGS["mixed-gqa2-no-ffn-adjust"], "vocab_size": 128}
    outputs = {}
    for bidirectional in (False, True):
        torch.manual_seed(0)
        model = LFM2Model(LFM2Config.from_dict({**shape, "bidirectional": bidirectional})).eval()
        ids, _ = right_padded_batch([10], 10)
        changed = ids.clone()
        changed[0, -1] = (changed[0, -1] + 1) % 128
        with torch.no_grad():
            outputs[bidirectional] = (model(ids) - model(changed))[0, :-1].abs().max().item()
    assert outputs[False] == 0.0
    assert outputs[True] > 1e-4


def test_bf16_stays_close_to_fp32():
    _, ours = make_pair(CONFIGS["mixed-gqa2-no-ffn-adjust"])
    ids, mask = right_padded_batch([20, 11], 20)
    with torch.no_grad():
        fp32 = ours(ids, mask)
        bf16 = ours.to(torch.bfloat16)(ids, mask).float()
    cos = torch.nn.functional.cosine_similarity(fp32[mask.bool()], bf16[mask.bool()], dim=-1)
    assert cos.min() > 0.99
