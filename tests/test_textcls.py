"""Task textcls: the synthetic language, the --data loader, the tokenizer."""

import random

import pytest
import torch

from superpos_cli.errors import BadInput
from superpos_cli.tasks import build_task
from superpos_cli.tasks.textcls import NEGATIVE, NEGATOR, POSITIVE, TextClsConfig, length_chunks, synthetic_examples
from superpos_cli.tasks.tokenizer import WordTokenizer


def _polarity(text):
    words, score = text.split(), 0
    for i, word in enumerate(words):
        sign = 1 if word in POSITIVE else -1 if word in NEGATIVE else 0
        if sign and i > 0 and words[i - 1] == NEGATOR:
            sign = -sign
        score += sign
    return score


@pytest.mark.parametrize("negation_rate", [0.0, 0.5])
def test_noise_free_labels_follow_the_documented_rule(negation_rate):
    cfg = TextClsConfig(label_noise=0.0, negation_rate=negation_rate)
    for text, label in synthetic_examples(cfg, 300, random.Random(1)):
        assert label == int(_polarity(text) > 0)


def test_label_noise_flips_the_stated_fraction():
    cfg = TextClsConfig(label_noise=0.2)
    examples = synthetic_examples(cfg, 4000, random.Random(2))
    flipped = sum(label != int(_polarity(text) > 0) for text, label in examples) / len(examples)
    assert flipped == pytest.approx(0.2, abs=0.025)


def test_dataset_is_a_function_of_the_seed():
    a, b, c = (build_task("textcls", s, {"n_train": 50, "n_val": 20}) for s in (3, 3, 4))
    assert torch.equal(a.train_ids, b.train_ids) and torch.equal(a.val_labels, b.val_labels)
    assert not torch.equal(a.train_ids[:, :5], c.train_ids[:, :5])


def test_tokenizer_maps_unseen_words_to_unk_and_pads_with_zero():
    tok = WordTokenizer.from_texts(["a b b", "c"])
    ids = tok.encode_batch(["b a zzz", ""], max_len=8)
    assert ids.tolist() == [[tok.vocab["b"], tok.vocab["a"], 1], [1, 0, 0]]
    assert tok.vocab["b"] == 2  # most frequent first


def test_jsonl_data_with_string_labels(tiny_jsonl):
    task = build_task("textcls", 0, {"data_path": str(tiny_jsonl), "val_fraction": 0.25})
    assert task.label_names == ["neg", "pos"]
    assert len(task.train_labels) == 36 and len(task.val_labels) == 12
    # The split is carved with the seed.
    other = build_task("textcls", 1, {"data_path": str(tiny_jsonl), "val_fraction": 0.25})
    assert not torch.equal(task.val_ids, other.val_ids)


def test_csv_data_and_unknown_validation_words(tmp_path):
    path = tmp_path / "d.csv"
    lines = ["text,label"] + [f"{'up' if i % 2 else 'down'} x{i},{i % 2}" for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    task = build_task("textcls", 0, {"data_path": str(path), "val_fraction": 0.5})
    assert task.label_names == ["0", "1"]
    # x{i} words of validation rows were never seen in training: they become <unk> (id 1).
    assert (task.val_ids[:, 1] == 1).all()


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ("", ".jsonl", "holds no examples"),
        ('{"text": "a", "label": 1}\nnot json\n', ".jsonl", "line 2 is not valid JSON"),
        ('{"text": "a"}\n', ".jsonl", "line 1 needs"),
        ('{"text": "a", "label": 1}\n{"text": "b", "label": 1}\n', ".jsonl", "at least 2 distinct labels"),
        ("words,label\na,1\n", ".csv", "'text' and 'label' columns"),
    ],
)
def test_bad_data_files_are_bad_input(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(BadInput, match=message):
        build_task("textcls", 0, {"data_path": str(path)})


def test_missing_data_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        build_task("textcls", 0, {"data_path": str(tmp_path / "missing.jsonl")})


def test_model_is_the_papers_and_attention_pluggable():
    task = build_task("textcls", 0, {"n_train": 10, "n_val": 10})
    model = task.build_model()
    assert len(model.blocks) == 2 and model.embed.embedding_dim == 64
    assert model.blocks[0].attn.n_heads == 4 and model.blocks[0].ff[0].out_features == 128
    assert model.blocks[0].attn.circuit is not None  # quantum attention is the paper's model
    classical = build_task("textcls", 0, {"n_train": 10, "n_val": 10, "kind": "classical"}).build_model()
    assert classical.blocks[0].attn.circuit is None
    logits = model(task.val_ids[:4])
    assert logits.shape == (4, 2)


def test_unknown_task_option_is_bad_input():
    with pytest.raises(BadInput, match="textcls"):
        build_task("textcls", 0, {"n_trian": 10})


def test_length_chunks_cover_every_row_once_trimmed_to_its_longest():
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0], [1, 2, 3, 4], [8, 9, 0, 0], [3, 0, 0, 0]])
    chunks, order = length_chunks(ids, 2)
    assert order.tolist() == [1, 4, 0, 3, 2]  # by length, ties in row order
    assert [tuple(c.shape) for c in chunks] == [(2, 1), (2, 2), (1, 4)]
    restored = torch.zeros_like(ids)
    for chunk, idx in zip(chunks, order.split(2)):
        restored[idx, : chunk.shape[1]] = chunk
    assert torch.equal(restored, ids)


@pytest.mark.parametrize("kind", ["quantum", "classical"])
def test_evaluation_in_length_chunks_equals_one_padded_pass(kind):
    """Reference: the whole validation set in one forward pass at full padding."""
    task = build_task("textcls", 3, {"kind": kind, "n_val": 300})
    torch.manual_seed(0)
    model = task.build_model().eval()
    with torch.no_grad():
        for p in model.parameters():  # away from initialisation, so logits spread
            p.add_(torch.randn_like(p) * 0.3)
        logits = model(task.val_ids)  # (M, C)
    got = task.evaluate(model)
    assert len(task._val_chunks) > 1 and max(c.shape[1] for c in task._val_chunks) == task.val_ids.shape[1]
    assert got["val_accuracy"] == pytest.approx(float(logits.argmax(1).eq(task.val_labels).float().mean()), abs=0)
    assert got["val_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, task.val_labels)), rel=1e-5)


def test_vocabulary_is_capped_and_unknown_tokens_counted(tmp_path):
    """A corpus with more distinct words than max_vocab keeps the most frequent ones;
    the rest become <unk>, counted per split against a count made here by hand."""
    import json

    rng = random.Random(0)
    rows = []
    for i in range(200):
        words = [f"w{min(int(rng.expovariate(0.05)), 400)}" for _ in range(8)] + ["good" if i % 2 else "bad"]
        rows.append({"text": " ".join(words), "label": i % 2})
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = build_task("textcls", 0, {"data_path": str(path), "max_vocab": 50})
    assert len(task.tokenizer) == 50
    kept = set(task.tokenizer.vocab)
    for split, ids in (("train", task.train_ids), ("val", task.val_ids)):
        real = int(ids.ne(0).sum())
        assert task.unknown_tokens[split]["count"] == int(ids.eq(1).sum()) > 0
        assert task.unknown_tokens[split]["share"] == pytest.approx(int(ids.eq(1).sum()) / real)
    assert {"good", "bad"} <= kept  # the most frequent words survive the cap
    assert task.describe()["unknown_tokens"] == task.unknown_tokens
    uncapped = build_task("textcls", 0, {"data_path": str(path)})
    assert len(uncapped.tokenizer) > 50 and uncapped.unknown_tokens["train"]["count"] == 0
    with pytest.raises(BadInput, match="max_vocab"):
        TextClsConfig(max_vocab=2)
