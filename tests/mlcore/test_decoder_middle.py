"""The causal LM's middle layer as a text's vector (mlcore.runtime.decoder_middle): the essay scorer reads it."""

import pytest
import torch

from mlcore import runtime
from tests.conftest import save_tiny_llama

TEXTS = ["the keeper lit the lamp .", "once upon a time", "a", "the lamp , the keeper , the time . once upon a time"]


@pytest.fixture(scope="module")
def four_layer_lm(tmp_path_factory, tiny_lm_dir):
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tiny-lm-4")
    save_tiny_llama(path, AutoTokenizer.from_pretrained(tiny_lm_dir), hidden_size=32, layers=4)
    return str(path)


def reference(path: str, text: str, depth: int, *, max_length: int = 384) -> torch.Tensor:
    """The whole model, one text at a time, no padding: hidden_states[depth] mean-pooled, unit length."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)["input_ids"]
    with torch.inference_mode():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states[depth][0]
    return torch.nn.functional.normalize(states.mean(0), dim=-1)


def test_the_cut_model_gives_the_whole_models_middle_layer_for_every_text_of_a_padded_batch(four_layer_lm):
    vectors = runtime.decoder_middle(four_layer_lm, TEXTS, batch_size=4)

    assert len(vectors) == len(TEXTS)
    for text, vector in zip(TEXTS, vectors, strict=True):
        expected = reference(four_layer_lm, text, depth=2)
        assert torch.allclose(torch.tensor(vector), expected, atol=1e-5), text
        assert abs(float(torch.tensor(vector).norm()) - 1.0) < 1e-5
    # The texts differ, so do their vectors (not one vector for a batch).
    assert not torch.allclose(torch.tensor(vectors[0]), torch.tensor(vectors[1]), atol=1e-3)


def test_only_the_blocks_up_to_the_middle_are_kept(four_layer_lm):
    runtime.decoder_middle(four_layer_lm, TEXTS[:1])
    (loaded,) = [item for key, item in runtime.cache._items.items() if key[0] == "decoder_middle"]

    assert loaded.model.cut and loaded.model.depth == 2
    assert len(loaded.model.base.layers) == 2
    assert isinstance(loaded.model.base.norm, torch.nn.Identity)


def test_a_text_is_read_up_to_max_length_tokens(four_layer_lm):
    long_text = " ".join(["the keeper lit the lamp ."] * 20)  # 120 tokens

    (vector,) = runtime.decoder_middle(four_layer_lm, [long_text], max_length=30)
    (first_30,) = runtime.decoder_middle(four_layer_lm, [" ".join(long_text.split()[:30])], max_length=384)

    assert torch.allclose(torch.tensor(vector), torch.tensor(first_30), atol=1e-5)
    assert torch.allclose(torch.tensor(vector), reference(four_layer_lm, long_text, depth=2, max_length=30), atol=1e-5)


def test_an_architecture_without_a_layers_list_runs_whole_and_returns_its_middle_entry(tmp_path, tiny_lm_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=4, n_head=2, n_positions=128,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    vectors = runtime.decoder_middle(str(tmp_path), TEXTS)

    (loaded,) = [item for key, item in runtime.cache._items.items() if key[0] == "decoder_middle"]
    assert not loaded.model.cut
    for text, vector in zip(TEXTS, vectors, strict=True):
        assert torch.allclose(torch.tensor(vector), reference(str(tmp_path), text, depth=2), atol=1e-5), text
