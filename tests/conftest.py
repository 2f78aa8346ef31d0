import json
import os

import pytest
import torch

# Small, fast, deterministic: the suite must run on 2 CPU cores in minutes.
torch.set_num_threads(1)


@pytest.fixture
def tiny_jsonl(tmp_path):
    """A small separable sentiment file in the --data JSONL format."""
    rows = []
    for i in range(48):
        label = i % 2
        word = "good" if label else "bad"
        rows.append({"text": f"w{i % 5} {word} w{i % 3} {word}", "label": "pos" if label else "neg"})
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path
