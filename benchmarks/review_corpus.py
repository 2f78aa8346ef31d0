"""Write a stand-in for a movie-review corpus as textcls JSONL, for timing ``--data``.

No real corpus can be downloaded here, so speed figures for ``--data`` runs use this
one, shaped like the sentence-polarity snippets such figures are usually quoted for:
10,072 sentences (half positive), about 20 words each (normal, sd 7, 4-60), words
drawn from a Zipf law (exponent 1.07) over an 18,000-word vocabulary, and about one
word in eight from a polarity list (400 words each side) that agrees with the label
in 80% of draws, so a model can learn it but not perfectly. Seeded: the same file
every time.

    python benchmarks/review_corpus.py /tmp/reviews.jsonl
    superpos compare adam sgd --task textcls --data /tmp/reviews.jsonl --target 0.7
"""

from __future__ import annotations

import json
import random
import sys
from itertools import accumulate
from pathlib import Path

N_SENTENCES = 10_072
VOCAB = 18_000
POLAR = 400
ZIPF = 1.07
POLAR_SHARE = 1 / 8
AGREE = 0.8
SEED = 2011


def _word(rng: random.Random) -> str:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "po", "ga", "fi", "ze", "bu", "ha", "ji"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))


def corpus(n: int = N_SENTENCES, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCAB + 2 * POLAR:
        w = _word(rng) + ("" if len(words) < 4000 else str(len(words) % 97))
        if w not in seen:
            seen.add(w)
            words.append(w)
    common, positive, negative = words[:VOCAB], words[VOCAB:VOCAB + POLAR], words[VOCAB + POLAR:]
    weights = list(accumulate(1.0 / (r + 1) ** ZIPF for r in range(VOCAB)))
    rows = []
    for i in range(n):
        label = i % 2
        length = min(60, max(4, round(rng.gauss(20, 7))))
        tokens = []
        for _ in range(length):
            if rng.random() < POLAR_SHARE:
                side = label if rng.random() < AGREE else 1 - label
                tokens.append(rng.choice(positive if side else negative))
            else:
                tokens.append(rng.choices(common, cum_weights=weights)[0])
        rows.append({"text": " ".join(tokens), "label": "pos" if label else "neg"})
    rng.shuffle(rows)
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python benchmarks/review_corpus.py OUT.jsonl", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.write_text("".join(json.dumps(row) + "\n" for row in corpus()), encoding="utf-8")
    print(f"{out}: {N_SENTENCES} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
