"""How long a training example may be: taken from the data, and never cut without a word.

SFT's `max_length` and RL's prompt length default to what the longest example needs, rendered as the trainer renders
it, up to `--max_length_cap`. An example over the limit (the cap, or a `--max_length` given) stops the run, naming
how many there are, unless `--overlong drop` or `--overlong truncate` says what to do; either is counted in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

POLICIES = ("error", "drop", "truncate")
DEFAULT_COMPLETION = 4096  # RL: tokens a rollout may write, tool responses included, when the context allows


@dataclass
class LengthArguments:
    """How long an example may be, and what becomes of longer ones."""

    max_length_cap: int = field(
        default=32768, metadata={"help": "Longest length taken from the data when --max_length is not given."}
    )
    overlong: str = field(
        default="error",
        metadata={"help": "Examples over the length: stop (error), leave them out (drop) or cut them (truncate).",
                  "choices": list(POLICIES)},
    )  # fmt: skip


class OverlongError(ValueError):
    """Examples over the length limit, and no --overlong policy for them."""


def token_lengths(rows, tokenizer, column: str = "messages") -> list[int]:
    """Tokens of each row's conversation as the chat template renders it (tools included), as the trainer sees it."""
    lengths = []
    for row in rows:
        text = tokenizer.apply_chat_template(row[column], tools=row.get("tools") or None, tokenize=False)
        lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return lengths


def fit(
    dataset,
    lengths: list[int],
    limit: int | None,
    args: LengthArguments,
    what: str,
    log: Callable[[str], None],
    cap: int | None = None,
) -> tuple[object, int]:
    """(the dataset to train on, the length limit): `limit` None takes the longest example, up to the cap (`cap`, else
    `args.max_length_cap`); examples over the limit stop the run unless `args.overlong` drops or truncates them,
    which is logged with the count."""
    longest = max(lengths, default=0)
    chosen = limit if limit is not None else min(longest, cap or args.max_length_cap)
    over = [i for i, n in enumerate(lengths) if n > chosen]
    source = "given" if limit is not None else f"the longest {what}" if chosen == longest else "the cap"
    log(f"{what} length {chosen} tokens ({source}); the longest of {len(lengths)} takes {longest}")
    if not over:
        return dataset, chosen
    said = f"{len(over)} of {len(lengths)} {what}s are longer than {chosen} tokens (the longest {longest})"
    if args.overlong == "error":
        hint = "raise --max_length_cap" if limit is None else "raise the limit"
        raise OverlongError(f"{said}: {hint}, or pass --overlong drop (leave them out) or --overlong truncate")
    if args.overlong == "drop":
        log(f"{said}: left out (--overlong drop)")
        keep = set(range(len(lengths))) - set(over)
        return dataset.select(sorted(keep)), chosen
    log(f"{said}: cut to {chosen} tokens (--overlong truncate)")
    return dataset, chosen


def fit_rl(dataset, prompt_lengths: list[int], training_args, args: LengthArguments, context: int | None, log):
    """The RL pool to train on, prompts checked like SFT's conversations (none is cut: the instructions come first),
    and `max_completion_length` (None: 4,096 or what the model's context leaves beside the longest prompt) checked
    to fit beside the longest prompt in the model's context."""
    if args.overlong == "truncate":
        raise OverlongError(
            "--overlong truncate would cut the agent's instructions off the prompts: use drop or error"
        )
    cap = min(args.max_length_cap, context) if context else args.max_length_cap
    dataset, longest = fit(dataset, prompt_lengths, None, args, "prompt", log, cap=cap)
    room = context - longest if context else None
    if training_args.max_completion_length is None:
        training_args.max_completion_length = min(DEFAULT_COMPLETION, room) if room else DEFAULT_COMPLETION
    elif room is not None and training_args.max_completion_length > room:
        raise OverlongError(
            f"--max_completion_length {training_args.max_completion_length} does not fit beside the longest prompt "
            f"({longest} tokens) in the model's {context}-token context: lower it to {room} or less"
        )
    log(f"rollouts: up to {training_args.max_completion_length} tokens each, tool responses included; longer ones are "
        "cut and left out of the loss (logged as completions/clipped_ratio)")  # fmt: skip
    return dataset
