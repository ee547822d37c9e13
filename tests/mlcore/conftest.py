"""Tiny random-initialised models, built offline, so mlcore tests run in seconds."""

import random

import pytest

from mlcore.models import Dataset
from mlcore.specs import PACKAGED

POSITIVE = ["profit rose", "shares jumped", "revenue beat forecasts", "record sales", "dividend raised"]
NEGATIVE = ["loss widened", "shares slumped", "revenue missed forecasts", "weak sales", "dividend cut"]
NEUTRAL = ["board meeting held", "annual report published", "office moved", "ceo spoke", "results due monday"]


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer (the tokenizer is packaged, so offline)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-encoder")
    minilm = PACKAGED["minilm"].package_dir() / PACKAGED["minilm"].subdir
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """A 2-layer Llama with a word-level tokenizer over a small vocabulary, with a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-lm")
    words = sorted({w for phrase in POSITIVE + NEGATIVE + NEUTRAL for w in phrase.split()}
                   | set("once upon a time keeper lit the lamp . , user assistant system < >".split()))
    vocab = {"<|endoftext|>": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    bpe = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def mlcore_home(settings, tmp_path):
    settings.MLCORE_HOME = tmp_path / "models"
    settings.MLCORE_HOME.mkdir()
    return settings.MLCORE_HOME


@pytest.fixture
def tiny_encoder_spec(monkeypatch, tiny_encoder_dir):
    monkeypatch.setenv("MLCORE_ENCODER", str(tiny_encoder_dir))
    return str(tiny_encoder_dir)


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    from mlcore import runtime

    runtime.cache.clear()
    yield
    runtime.cache.clear()


def sentiment_csv(rows_per_class: int = 20, seed: int = 1) -> bytes:
    """A small labelled CSV: varied sentences built from the phrase lists above."""
    rng = random.Random(seed)
    companies = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Tyrell"]
    lines = ["text,label"]
    for label, phrases in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        for i in range(rows_per_class):
            lines.append(f"{rng.choice(companies)} {rng.choice(phrases)} in quarter {i} of year {2000 + i},{label}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def sentiment_dataset(db, mlcore_home):
    from mlcore.services import dataset_create

    return dataset_create(name="tiny sentiment", kind=Dataset.Kind.CLASSIFICATION, data=sentiment_csv(),
                          filename="tiny.csv")
