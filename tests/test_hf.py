"""A local Hugging Face checkpoint through the gsm8k task and the real loop: a tiny
random Llama and a BPE tokenizer the test trains, saved to a temporary folder."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from superpos_cli.engine.loop import train  # noqa: E402
from superpos_cli.errors import BadInput  # noqa: E402
from superpos_cli.models.hf import HFTokenizer, _require, load_causal_lm  # noqa: E402
from superpos_cli.tasks.gsm8k import GSM8KConfig, GSM8KTask  # noqa: E402
from superpos_cli.tasks.gsm8k_generator import generate_problems  # noqa: E402


def paper_train_config(seed, **values):
    """The gsm8k protocol (spec/options.py TASK_PROTOCOL) with ``values`` on top."""
    from superpos_cli.experiments.plan import train_config
    from superpos_cli.spec.run import settings

    return train_config(settings({"task": "gsm8k", **values}), seed)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    texts = [p["question"] + "\n" + p["answer"] for p in generate_problems(50, 0)]
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return str(folder)


def hf_task(path: str, **kw) -> GSM8KTask:
    return GSM8KTask(GSM8KConfig(hf_model_path=path, limit=10, eval_examples=2, max_new_tokens=6, **kw))


def test_tokenizer_adapter(checkpoint):
    tok = HFTokenizer(checkpoint)
    text = "Tom has 3 x 12 = <<3*12=36>>36 apples.\n#### 36"
    assert tok.decode(tok.encode(text)) == text
    assert tok.eos_id != tok.pad_id and tok.bos_id is not None


def test_full_fine_tuning_through_the_loop(checkpoint):
    task = hf_task(checkpoint)
    assert task.describe()["tokenizer"]["vocab_size"] == task.tokenizer.vocab_size
    cfg = paper_train_config(0, evals_per_epoch=2, grad_accum=2)
    result = train(task, lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01), cfg)
    assert result.steps == 5 and math.isfinite(result.mean_train_loss)
    assert math.isfinite(result.final_metrics["val_loss"]) and 0 <= result.final_metrics["val_accuracy"] <= 1
    assert result.evals[-1].metrics["val_loss"] < result.evals[0].metrics["val_loss"] + 1.0
    assert result.train_tokens > 0


def test_lora_trains_only_the_adapters(checkpoint):
    task = hf_task(checkpoint, lora_rank=4)
    built = []

    def make_optimizer(model):
        built.append(model)
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    result = train(task, make_optimizer, paper_train_config(0, evals_per_epoch=1))
    assert math.isfinite(result.mean_train_loss)
    trained = dict(built[0].named_parameters())
    trainable = [name for name, p in trained.items() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    base = dict(load_causal_lm(checkpoint).model.named_parameters())
    frozen = {name: p for name, p in trained.items() if not p.requires_grad}
    for name, p in frozen.items():
        key = name.replace("model.base_model.model.", "").replace(".base_layer", "")
        torch.testing.assert_close(p, base[key], rtol=0, atol=0)
    assert any(not torch.all(trained[name] == 0) for name in trainable if "lora_B" in name)  # B starts at 0


def test_bad_paths(tmp_path):
    with pytest.raises(BadInput, match="no such folder"):
        load_causal_lm(tmp_path / "missing")
    with pytest.raises(BadInput, match="not a Hugging Face checkpoint"):
        HFTokenizer(tmp_path)
    with pytest.raises(BadInput, match=r"pip install 'superpos_cli\[hf\]'"):
        _require("superpos_no_such_module")
