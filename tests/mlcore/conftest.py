"""mlcore fixtures: small labelled data. The tiny models live in tests/conftest.py."""

import random

import pytest

from mlcore.models import Dataset
from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE  # noqa: F401  (re-exported for the tests)

# A tiny corpus in the tiny Llama's word-level vocabulary, for LoRA fine-tunes.
CORPUS = [
    "once upon a time the keeper lit the lamp .",
    "the keeper lit the lamp once upon a time .",
    "profit rose and shares jumped .",
    "record sales and dividend raised .",
] * 6


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
