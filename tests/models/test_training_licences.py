"""The shipped model's training set leaves out every collection whose terms forbid a product."""

from __future__ import annotations

from pathlib import Path

import pytest
from models.generator import corpus

pytest.importorskip("torch")  # the training code imports it


def test_the_default_training_set_is_the_commercially_usable_one():
    from models.generator import train

    args = train.parse_args([])
    assert sorted(args.sources) == sorted(corpus.COMMERCIAL_SOURCES)
    assert "essenFolksong" not in args.sources
    # research runs may still name it explicitly
    assert "essenFolksong" in train.parse_args(["--sources", "bach", "essenFolksong"]).sources


def test_the_essen_terms_are_what_the_model_card_says():
    music21 = pytest.importorskip("music21")
    terms = Path(music21.__file__).parent / "corpus" / "essenFolksong" / "license.txt"
    if not terms.exists():
        pytest.skip("this music21 ships without its corpus")
    assert "non-commercial" in terms.read_text()
    card = (Path(__file__).resolve().parents[2] / "models" / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card and "COMMERCIAL_SOURCES" in card
