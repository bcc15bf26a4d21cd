import json

import pytest

from lfm2_core import LFM2Config

# The LFM2.5-ColBERT-350M config.json as published: legacy training keys beside HF ones.
LFM25_COLBERT = {
    "architectures": ["Lfm2BidirectionalModel"], "block_auto_adjust_ff_dim": True, "block_dim": 1024,
    "block_ff_dim": 6656, "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256, "block_norm_eps": 1e-05,
    "conv_L_cache": 3, "conv_bias": False, "eos_token_id": 7, "hidden_size": 1024, "intermediate_size": 6656,
    "layer_types": ["conv", "conv", "full_attention", "conv", "conv", "full_attention", "conv", "conv",
                    "full_attention", "conv", "full_attention", "conv", "full_attention", "conv",
                    "full_attention", "conv"],
    "model_type": "lfm2", "norm_eps": 1e-05, "num_attention_heads": 16, "num_heads": 16, "num_hidden_layers": 16,
    "num_key_value_heads": 8, "pad_token_id": 0, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
    "rope_theta": 1000000.0, "tie_embedding": True, "vocab_size": 64402,
}


def test_published_bidirectional_config_reads_as_is():
    cfg = LFM2Config.from_dict(LFM25_COLBERT)
    assert cfg.bidirectional
    assert cfg.hidden_size == 1024 and cfg.head_dim == 64
    assert cfg.ffn_dim == 4608  # 2/3 * 6656 = 4437 -> rounded up to a multiple of 256
    assert cfg.layer_types.count("full_attention") == 6
    assert cfg.eos_token_id == 7 and cfg.tie_word_embeddings


def test_legacy_keys_take_precedence_like_transformers():
    raw = {"num_hidden_layers": 4, "full_attn_idxs": [1, 3], "block_ff_dim": 512, "intermediate_size": 999,
           "tie_embedding": False, "rope_theta": 10000.0, "hidden_size": 64, "num_attention_heads": 4,
           "num_key_value_heads": 2}
    cfg = LFM2Config.from_dict(raw)
    assert cfg.layer_types == ["conv", "full_attention", "conv", "full_attention"]
    assert cfg.intermediate_size == 512
    assert cfg.tie_word_embeddings is False
    assert cfg.rope_theta == 10000.0
    assert not cfg.bidirectional


def test_matches_transformers_defaults_and_round_trips(tmp_path):
    transformers = pytest.importorskip("transformers")
    raw = {
        "hidden_size": 96,
        "intermediate_size": 300,
        "num_hidden_layers": 3,
        "num_attention_heads": 6,
        "num_key_value_heads": 3,
        "layer_types": ["conv", "full_attention", "conv"],
        "block_auto_adjust_ff_dim": False,
    }
    ours = LFM2Config.from_dict(raw)
    hf = transformers.Lfm2Config(**raw)
    mlp = transformers.models.lfm2.modeling_lfm2.Lfm2MLP(hf)
    assert ours.ffn_dim == mlp.w1.out_features == 300
    ours.save(tmp_path / "config.json")
    again = transformers.Lfm2Config.from_pretrained(tmp_path)
    assert again.layer_types == ours.layer_types and again.intermediate_size == 300
    assert LFM2Config.from_json(tmp_path / "config.json") == ours


@pytest.mark.parametrize("bad, message", [
    ({"num_hidden_layers": 2, "layer_types": ["conv"]}, "layer_types"),
    ({"num_hidden_layers": 1, "layer_types": ["mamba"]}, "unknown layer"),
    ({"num_attention_heads": 6, "num_key_value_heads": 4}, "multiple"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1.0}}, "RoPE"),
    ({"model_type": "llama"}, "not an LFM2"),
])
def test_bad_configs_fail_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        LFM2Config.from_dict(bad)


def test_bidirectional_flag_survives_saving(tmp_path):
    cfg = LFM2Config.from_dict({**LFM25_COLBERT, "num_hidden_layers": 2, "layer_types": ["conv", "full_attention"]})
    cfg.save(tmp_path / "config.json")
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["bidirectional"] is True and raw["model_type"] == "lfm2"
    assert LFM2Config.from_json(tmp_path / "config.json").bidirectional
