"""Offline review sentiment: a small English + Portuguese lexicon shipped inside the package.

No model is downloaded at run time.  A review's sentiment is the mean lexicon score of its
matched words (scores lie in [-1, 1]); a review with text but no matched word scores 0.
The same rule runs in SQL (see :mod:`buyerscore.features.sql`) and in :func:`score_text`.

>>> score_text("Produto excelente, chegou rápido!")
0.8
>>> score_text("terrible, arrived broken")
-0.95
>>> score_text("")
0.0
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

LEXICON_FILE = "sentiment_en_pt.txt"
TOKEN_PATTERN = r"[^\p{L}]+"
"""Token separator (RE2 / Java regex syntax): any run of characters that are not letters."""

_PY_SPLIT = re.compile(r"[\W\d_]+", re.UNICODE)


@lru_cache(maxsize=1)
def load_lexicon() -> dict[str, float]:
    """The lexicon as ``{word: score}`` (lower-case words, scores in [-1, 1])."""
    text = resources.files("buyerscore.features").joinpath("lexicon", LEXICON_FILE).read_text(encoding="utf-8")
    lex: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, score = line.split("\t")
        lex[word.strip().lower()] = float(score)
    return lex


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (the Python twin of the SQL tokenizer)."""
    return [t for t in _PY_SPLIT.split(text.lower()) if t]


def score_text(text: str | None) -> float:
    """Sentiment of one review text in [-1, 1]: the mean score of the lexicon words it contains."""
    if not text:
        return 0.0
    lex = load_lexicon()
    scores = [lex[t] for t in tokens(text) if t in lex]
    return round(sum(scores) / len(scores), 10) if scores else 0.0
