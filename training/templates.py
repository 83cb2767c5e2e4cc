"""Chat templates with `{% generation %}` markers, so TRL's `assistant_only_loss` trains on assistant turns only.

`return_assistant_tokens_mask` marks the characters a template renders inside `{% generation %}...{% endgeneration %}`;
each template here wraps exactly what the model writes in a turn (thought, text, tool calls, the end-of-turn token)
and leaves the turn header (`<|im_start|>assistant\\n`), system, user and tool turns outside, as WebDancer masks them.

Families (`FAMILIES`):
- `qwen2_5`: Qwen2 and Qwen2.5. Renders what Qwen2.5's own template renders (tools listed in the system turn, tool
  results as user turns in <tool_response>), plus the markers; arguments given as a JSON string pass through
  instead of being encoded a second time.
- `qwen3`: Qwen3. Qwen3's template as TRL's training variant has it: every assistant turn keeps its <think> block.
- `chatml`: any tokenizer with <|im_start|>/<|im_end|> (SmolLM2, ...): WebDancer's own text. The tools are listed as
  `wdtk.synth.agent.format.Instructions().system_prompt()` lists them, so an exported SFT row renders to exactly the
  text of its WebDancer export (and the text the agent saw while sampling).
- `llama3`: Llama 3.x header tokens around the same WebDancer text. Llama 3.1's own template keeps no text beside a
  tool call (the thought would be lost) and takes one call in a bare `{"name", "parameters"}` form the system prompt
  does not ask for, so this one follows the prompt instead.

`select_template` picks one by name, or from the model type and the tokenizer's special tokens, and fails naming the
known families otherwise. A template file of your own works too (TRL's `--chat_template_path`), if it has the markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# WebDancer's tool list, as Instructions.system_prompt() writes it (a test checks the two agree).
_WEBDANCER_SYSTEM = r"""
{%- macro system_text(content) -%}
    {{- content }}
    {%- if tools %}
        {%- if content %}{{- '\n\n' }}{%- endif %}
        {{- '# Tools\n\nYou may call one of the following functions per turn.\n\n<tools>' }}
        {%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}
        {{- '\n</tools>\n\nCall a function by returning a JSON object with its name and arguments inside '
            '<tool_call></tool_call> tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}'
            '\n</tool_call>' }}
    {%- endif %}
{%- endmacro -%}
{%- macro assistant_text(message) -%}
    {%- set content = message.content if message.content is string else '' %}
    {%- if message.reasoning_content is string and message.reasoning_content %}
        {{- '<think>\n' + message.reasoning_content + '\n</think>' }}
        {%- if content or message.tool_calls %}{{- '\n' }}{%- endif %}
    {%- endif %}
    {{- content }}
    {%- for call in message.tool_calls or [] %}
        {%- set call = call.function if call.function is defined else call %}
        {%- if content or not loop.first %}{{- '\n' }}{%- endif %}
        {{- '<tool_call>\n{"name": "' + call.name + '", "arguments": ' }}
        {{- call.arguments if call.arguments is string else call.arguments | tojson }}
        {{- '}\n</tool_call>' }}
    {%- endfor %}
{%- endmacro -%}
"""

CHATML = (
    _WEBDANCER_SYSTEM
    + r"""
{%- if tools and messages[0].role != 'system' %}
    {{- '<|im_start|>system\n' + system_text('') + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {{- '<|im_start|>assistant\n' }}
        {%- generation %}{{- assistant_text(message) + '<|im_end|>' }}{%- endgeneration %}
        {{- '\n' }}
    {%- elif message.role == 'tool' %}
        {{- '<|im_start|>user\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' }}
    {%- elif message.role == 'system' and loop.first %}
        {{- '<|im_start|>system\n' + system_text(message.content) + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""
)

LLAMA3 = (
    _WEBDANCER_SYSTEM
    + r"""
{{- bos_token }}
{%- if tools and messages[0].role != 'system' %}
    {{- '<|start_header_id|>system<|end_header_id|>\n\n' + system_text('') + '<|eot_id|>' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
        {%- generation %}{{- assistant_text(message) + '<|eot_id|>' }}{%- endgeneration %}
    {%- elif message.role == 'tool' %}
        {{- '<|start_header_id|>user<|end_header_id|>\n\n<tool_response>\n' + message.content }}
        {{- '\n</tool_response><|eot_id|>' }}
    {%- elif message.role == 'system' and loop.first %}
        {{- '<|start_header_id|>system<|end_header_id|>\n\n' + system_text(message.content) + '<|eot_id|>' }}
    {%- else %}
        {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}
"""
)

# Qwen's tool preamble, word for word from Qwen2.5's and Qwen3's own templates.
_QWEN_TOOLS = r"""
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
"""  # noqa: E501

# An assistant turn's tool calls in Qwen's format and the end of the turn: both Qwen families write them alike.
_QWEN_CALLS = r"""
        {%- for call in message.tool_calls or [] %}
            {%- set call = call.function if call.function is defined else call %}
            {%- if content or not loop.first %}{{- '\n' }}{%- endif %}
            {{- '<tool_call>\n{"name": "' + call.name + '", "arguments": ' }}
            {{- call.arguments if call.arguments is string else call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>' }}
        {%- endgeneration %}
        {{- '\n' }}"""

# Shared tail: user and system turns, tool results grouped into one user turn, the generation prompt.
_QWEN_TURNS = r"""
    {%- elif message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\n<tool_response>\n' + content + '\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
"""

QWEN2_5 = (
    r"""
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}
    {{- '\n\n' }}"""
    + _QWEN_TOOLS
    + r"""
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- else %}
    {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- set content = message.content if message.content is string else '' %}
    {%- if message.role == 'assistant' %}
        {{- '<|im_start|>assistant\n' }}
        {%- generation %}
        {{- content }}"""
    + _QWEN_CALLS
    + _QWEN_TURNS
    + "{%- endif %}\n"
)

QWEN3 = (
    r"""
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{%- endif %}"""
    + _QWEN_TOOLS
    + r"""
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- set content = message.content if message.content is string else '' %}
    {%- if message.role == 'assistant' %}
        {%- set reasoning = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning = message.reasoning_content %}
        {%- elif '<think>' in content and '</think>' in content %}
            {%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {{- '<|im_start|>assistant\n' }}
        {%- generation %}
        {{- '<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}"""
    + _QWEN_CALLS
    + _QWEN_TURNS
    + r"""
    {%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}
"""
)


@dataclass(frozen=True)
class Family:
    """A chat template, the special tokens it needs in the vocabulary, and the token that ends an assistant turn."""

    name: str
    models: str  # who uses it, for error messages and --help
    template: str
    tokens: tuple[str, ...]
    end_of_turn: str


_CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
_LLAMA3_TOKENS = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("qwen2_5", "Qwen2, Qwen2.5", QWEN2_5, _CHATML_TOKENS, "<|im_end|>"),
        Family("qwen3", "Qwen3", QWEN3, _CHATML_TOKENS, "<|im_end|>"),
        Family("llama3", "Llama 3.x", LLAMA3, _LLAMA3_TOKENS, "<|eot_id|>"),
        Family("chatml", "any model with <|im_start|>/<|im_end|> tokens", CHATML, _CHATML_TOKENS, "<|im_end|>"),
    )
}
_BY_MODEL_TYPE = {"qwen2": "qwen2_5", "qwen2_moe": "qwen2_5", "qwen3": "qwen3", "qwen3_moe": "qwen3"}
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


def has_generation_markers(template: str | dict | None) -> bool:
    """Whether `template` (or its `default` variant) marks assistant output with {% generation %}."""
    if isinstance(template, dict):
        template = template.get("default")
    return bool(template) and _GENERATION.search(template) is not None


def known_families() -> str:
    """One line naming every family and the models it is for."""
    return "; ".join(f"{f.name} ({f.models})" for f in FAMILIES.values())


def family(name: str) -> Family:
    """The family called `name`, or ValueError naming the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown chat template family {name!r}; known: {known_families()}")
    return FAMILIES[name]


def detect_family(model_type: str | None, vocab: set[str] | dict) -> Family | None:
    """The family for a model type and vocabulary: Qwen by model type, then Llama 3 or chatml by special tokens."""
    if model_type in _BY_MODEL_TYPE:
        return FAMILIES[_BY_MODEL_TYPE[model_type]]
    if all(t in vocab for t in _LLAMA3_TOKENS):
        return FAMILIES["llama3"]
    if all(t in vocab for t in _CHATML_TOKENS):
        return FAMILIES["chatml"]
    return None


def select_template(tokenizer, model_type: str | None = None, name: str | None = None) -> tuple[str, str | None]:
    """(chat template, end-of-turn token or None) to train `tokenizer`'s model with assistant-only loss.

    A family `name` wins; otherwise a template that already has generation markers is kept; otherwise the family is
    detected from `model_type` and the special tokens. Raises ValueError naming the known families when none fits,
    or the missing tokens when the chosen family's markup is not in the vocabulary.
    """
    vocab = tokenizer.get_vocab()
    if name is None and has_generation_markers(tokenizer.chat_template):
        known = next((f for f in FAMILIES.values() if f.template == tokenizer.chat_template), None)
        return tokenizer.chat_template, known.end_of_turn if known else None
    chosen = family(name) if name is not None else detect_family(model_type, vocab)
    if chosen is None:
        raise ValueError(
            f"no chat template with generation markers for model type {model_type!r} "
            f"({type(tokenizer).__name__} {getattr(tokenizer, 'name_or_path', '')!r}); known families: "
            f"{known_families()}. Pass --chat_template_family NAME, or --chat_template_path FILE.jinja with "
            "{% generation %}...{% endgeneration %} around what the assistant writes."
        )
    if missing := [t for t in chosen.tokens if t not in vocab]:
        raise ValueError(f"chat template family {chosen.name!r} needs tokens the tokenizer lacks: {missing}")
    return chosen.template, chosen.end_of_turn
