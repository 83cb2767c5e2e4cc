"""A tiny language model and tokenizer built in memory, and WebDancer trajectories to train it on.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in milliseconds on the trajectories' own text (so
any text encodes), with the chat markup and WebDancer's tags as added tokens; the model is a 2-layer Qwen2 or Llama
with hidden size 32, initialised from a seed.

    tok = tiny_tokenizer("qwen2_5")          # chat template from wdtk.training.templates
    model = tiny_model(tok)                  # Qwen2ForCausalLM (LlamaForCausalLM for the llama3 family)
    path = save_tiny(tmp_path / "lm", "qwen2_5")   # both saved, for code that loads a model by path
"""

from __future__ import annotations

import re
from pathlib import Path

from wdtk.schemas import record_id
from wdtk.synth.agent.format import TOOLS, Instructions, Turn, assistant_message, chatml

WEBDANCER_TAGS = [
    f"<{slash}{tag}>" for tag in ("think", "tool_call", "tool_response", "answer") for slash in ("", "/")
]
MARKUP = {  # special tokens and (bos, eos, pad) per template family
    "chatml": (["<|im_start|>", "<|im_end|>", "<|endoftext|>"], (None, "<|im_end|>", "<|endoftext|>")),
    "llama3": (
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"],
        ("<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>"),
    ),
}
MARKUP["qwen2_5"] = MARKUP["qwen3"] = MARKUP["chatml"]


def trajectory(question: str, answer: str, steps: list[tuple[str, str, dict, str]], rollout: int = 0) -> dict:
    """A valid trajectory record: each step is (thought, tool, arguments, tool result); then the answer turn."""
    messages = [
        {"role": "system", "content": Instructions().system_prompt()},
        {"role": "user", "content": question},
    ]
    for i, (thought, tool, arguments, result) in enumerate(steps):
        call_id = f"call_{i}"
        messages.append(assistant_message(Turn(think=thought, call={"name": tool, "arguments": arguments}), call_id))
        messages.append({"role": "tool", "name": tool, "tool_call_id": call_id, "content": result})
    messages.append(assistant_message(Turn(think=f"So the answer is {answer}.", answer=answer)))
    qa_id = record_id("qa", question, answer)
    return {
        "id": record_id("trajectory", qa_id, rollout),
        "question_id": qa_id,
        "question": question,
        "answer": answer,
        "rollout": rollout,
        "prediction": answer,
        "termination": "answer",
        "stats": {"llm_calls": len(steps) + 1, "actions": len(steps)},
        "tools": TOOLS,
        "meta": {"wdtk_version": "0.1.0", "model": "tiny", "prompt_version": Instructions().version, "parent_ids": []},
        "messages": messages,
    }


def sample_trajectories() -> list[dict]:
    """Three short trajectories: search then visit, a search with two queries, a visit alone (non-ASCII text)."""
    return [
        trajectory(
            "In which year was the Halvard Institute founded?",
            "1872",
            [
                ("I should look this up.", "search", {"query": ["Halvard Institute founded"]}, "1. Halvard Institute"),
                (
                    "The first result looks right; read it.",
                    "visit",
                    {"url": ["https://halvard.example/about"], "goal": "founding year"},
                    "The institute was founded in 1872 by Maren Holt.",
                ),
            ],
        ),
        trajectory(
            "Who founded the Keldra Society?",
            "Ansel Varro",
            [("Search both names.", "search", {"query": ["Keldra Society", "Keldra founder"]}, "Ansel Varro (1801)")],
        ),
        trajectory(
            "What river runs through Tarnholm?",
            "the Vell",
            [
                (
                    "Read the town page.",
                    "visit",
                    {"url": ["https://tarnholm.example"], "goal": "Fluss – river"},
                    "Am Vell: Zürich’s twin.",
                )
            ],
        ),
    ]


def tiny_tokenizer(template: str = "qwen2_5", vocab_size: int = 700):
    """A fast tokenizer trained in memory, with `template`'s family chat template (wdtk.training.templates)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from wdtk.training.templates import FAMILIES

    specials, (bos, eos, pad) = MARKUP[template]
    corpus = [chatml(t["messages"]) for t in sample_trajectories()] + [FAMILIES[template].template]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False)
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in WEBDANCER_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        chat_template=FAMILIES[template].template,
        name_or_path=f"tiny-{template}",
    )


def tiny_model(tokenizer, seed: int = 0):
    """A randomly initialised 2-layer causal LM for `tokenizer`: Llama for Llama 3 markup, else Qwen2."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    llama = "<|eot_id|>" in tokenizer.get_vocab()
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if llama else (Qwen2Config, Qwen2ForCausalLM)
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return model_cls(config)


def save_tiny(path: str | Path, template: str = "qwen2_5", markers: bool = False) -> Path:
    """A tiny model and tokenizer saved together in `path`, loadable with from_pretrained(path).

    Like a checkpoint as shipped, its chat template has no {% generation %} markers unless `markers` is set.
    """
    tokenizer = tiny_tokenizer(template)
    if not markers:
        tokenizer.chat_template = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", tokenizer.chat_template)
    tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
