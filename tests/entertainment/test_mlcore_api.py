"""The two mlcore.api additions the context builder relies on: count_tokens and context_window."""

import pytest

from mlcore import api
from mlcore.models import Task

pytestmark = pytest.mark.django_db


def test_count_tokens_uses_the_active_models_tokenizer(active_lm):
    # The tiny tokenizer is word-level: one token per known or unknown word.
    assert api.count_tokens(Task.STORY, ["once upon a time", "", "the keeper lit the lamp ."]) == [4, 0, 6]
    assert api.count_tokens(Task.STORY, []) == []
    with pytest.raises(TypeError):
        api.count_tokens(Task.STORY, "a single string")


def test_context_window_is_max_position_embeddings(active_lm):
    assert api.context_window(Task.DIALOGUE) == 256


def test_without_an_active_model_both_say_so():
    with pytest.raises(api.NoActiveVersion):
        api.count_tokens(Task.STORY, ["x"])
    with pytest.raises(api.NoActiveVersion):
        api.context_window(Task.STORY)
