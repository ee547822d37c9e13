import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from core.roles import Role
from mlcore.specs import PACKAGED

POSITIVE = ["profit rose", "shares jumped", "revenue beat forecasts", "record sales", "dividend raised"]
NEGATIVE = ["loss widened", "shares slumped", "revenue missed forecasts", "weak sales", "dividend cut"]
NEUTRAL = ["board meeting held", "annual report published", "office moved", "ceo spoke", "results due monday"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Test users need a password, not a strong hash: PBKDF2 dominated the view tests' time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_request_counters():
    """API throttles count in the default cache: each test starts with none used (the test client's IP is shared)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def make_user(db):
    """Create a user holding the given roles."""
    counter = iter(range(10_000))

    def _make(*roles: Role, username: str | None = None, **extra):
        username = username or f"user{next(counter)}-{'-'.join(r.value for r in roles) or 'none'}"
        user = get_user_model().objects.create_user(username=username, password="pw-for-tests-only", **extra)
        user.groups.set([Group.objects.get_or_create(name=role.value)[0] for role in roles])
        return user

    return _make


@pytest.fixture
def client_with_roles(client, make_user):
    """A test client logged in as a fresh user holding the given roles."""

    def _login(*roles: Role):
        user = make_user(*roles)
        client.force_login(user)
        return client

    return _login


# Tiny random-initialised models, built offline, so model tests run in seconds.


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
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

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
    save_tiny_llama(path, tokenizer, hidden_size=32, layers=2)
    return path


def save_tiny_llama(path, tokenizer, *, hidden_size: int, layers: int) -> None:
    """A random-initialised Llama (seed 0, 256 positions) over `tokenizer`, saved with it at `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=256, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


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
