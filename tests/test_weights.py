import pytest
import torch

from lfm2_core import ModelNotFoundError, load_backbone, resolve_model_dir

transformers = pytest.importorskip("transformers")


def tiny_hf_config():
    return transformers.Lfm2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1,
                                   layer_types=["conv", "full_attention"])


@pytest.mark.parametrize("shard", [None, "20KB"])
def test_loads_causal_lm_checkpoints_single_and_sharded(tmp_path, shard):
    torch.manual_seed(0)
    reference = transformers.Lfm2ForCausalLM(tiny_hf_config()).eval()
    kwargs = {"max_shard_size": shard} if shard else {}
    reference.save_pretrained(tmp_path, **kwargs)
    if shard:
        assert (tmp_path / "model.safetensors.index.json").exists()
    model, _ = load_backbone(tmp_path)
    ids = torch.randint(3, 64, (2, 7))
    with torch.no_grad():
        expected = reference.model(input_ids=ids).last_hidden_state
        assert (model(ids) - expected).abs().max() <= 1e-5


def test_loads_in_bf16(tmp_path):
    transformers.Lfm2Model(tiny_hf_config()).save_pretrained(tmp_path)
    model, _ = load_backbone(tmp_path, dtype=torch.bfloat16)
    assert model.embed_tokens.weight.dtype == torch.bfloat16


def test_mismatched_weights_fail_clearly(tmp_path):
    transformers.Lfm2Model(tiny_hf_config()).save_pretrained(tmp_path)
    config = tiny_hf_config()
    config.num_hidden_layers, config.layer_types = 3, ["conv", "full_attention", "conv"]
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="missing"):
        load_backbone(tmp_path)


def test_offline_hub_id_says_how_to_get_the_files(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download LiquidAI/LFM2-ColBERT-350M"):
        resolve_model_dir("LiquidAI/LFM2-ColBERT-350M")


def test_a_missing_local_path_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a folder"):
        resolve_model_dir(str(tmp_path / "nope" / "model"))
