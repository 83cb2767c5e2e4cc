"""WebDancer's ReAct format: the tools, the system prompt, parsing a model turn, and rendering turns as text.

A trajectory is stored in TRL's conversational form (`messages` with `tool_calls` and `tool` turns, plus `tools`);
the model sees, and writes, WebDancer's text form:

    <think>I should look this up.</think>
    <tool_call>
    {"name": "search", "arguments": {"query": ["Halvard Institute founded"]}}
    </tool_call>
    ... the tool result comes back as a user turn: <tool_response>\n...\n</tool_response>
    <think>The page says 1872.</think>
    <answer>1872</answer>

`parse_turn` reads one model output into a `Turn`; `render_assistant` and `text_messages` turn stored messages back
into the text the model saw, and `chatml` renders a whole trajectory in chatml for training on plain text.
`turn_grammar` is the format as a grammar, which backends that can enforce one hold each turn to (`--structured`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from jsonschema import Draft202012Validator

from ..llm.structured import JSON_OPTIONS, tightened
from ..prompting import load_prompt

MAX_QUERIES = 5  # per search call; a longer batch is cut, as WebDancer's search tool does
MAX_URLS = 5

TOOLS: list[dict] = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Web search. Runs each query and returns the top results (title, url, snippet) per query.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                        "description": f"Queries to run together (at most {MAX_QUERIES}).",
                    }
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "visit",
            "description": "Read web pages and return the evidence in them for a goal, with a summary.",
            "parameters": {
                "type": "object",
                "properties": {
                    "url": {
                        "type": "array",
                        "items": {"type": "string", "pattern": "^https?://"},
                        "minItems": 1,
                        "description": f"URLs to read (at most {MAX_URLS}).",
                    },
                    "goal": {"type": "string", "minLength": 1, "description": "What to look for on the pages."},
                },
                "required": ["url", "goal"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "answer",
            "description": "Give the final answer (the same as writing it inside <answer></answer>).",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string", "minLength": 1}},
                "required": ["answer"],
                "additionalProperties": False,
            },
        },
    },
]
TOOL_NAMES = frozenset(t["function"]["name"] for t in TOOLS)
_VALIDATORS = {t["function"]["name"]: Draft202012Validator(t["function"]["parameters"]) for t in TOOLS}

MAX_ARGUMENT_CHARS = 120  # per string in a constrained tool call: a small model would otherwise ramble to the budget
MAX_ANSWER_TOKENS = 48  # an answer is a short phrase; the grammar closes </answer> after this many tokens
MAX_CALL_ITEMS = 3  # queries or URLs per constrained call (the tools take up to 5)
TURN_OVERHEAD_TOKENS = 112  # the least a constrained turn keeps free of thinking, for its action
CALL_FRAME_TOKENS = 48  # a call's tags, tool name, keys and punctuation: about 90 characters of common text
VISIT_GOAL_CHARS = 24  # a constrained visit's goal: what to look for, in a few words

_URL = re.compile(r"https?://[^\s)\]>\"']+")  # as the funnel finds them (filters/funnel.py)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TAGS = ("think", "tool_call", "answer")


@dataclass
class Turn:
    """One model output, parsed. Exactly one of `call` and `answer` is set, unless `error` says why neither is."""

    think: str = ""
    text: str = ""  # what is left outside the tags (usually nothing)
    call: dict | None = None  # {"name": ..., "arguments": {...}}
    answer: str | None = None
    error: str | None = None  # format error: why this output is not a valid turn
    raw: str = ""


@dataclass(frozen=True)
class Instructions:
    """The system prompt: the instructions, and the tools listed after them (as a Qwen-style chat template does)."""

    tools: list[dict] = field(default_factory=lambda: TOOLS)

    @property
    def text(self) -> str:
        return load_prompt("react_system").text.strip()

    @property
    def version(self) -> str:
        return load_prompt("react_system").version

    def system_prompt(self) -> str:
        """Instructions, then the tools as JSON signatures, then how to call them."""
        signatures = "\n".join(json.dumps(t, ensure_ascii=False) for t in self.tools)
        return (
            f"{self.text}\n\n# Tools\n\nYou may call one of the following functions per turn.\n\n"
            f"<tools>\n{signatures}\n</tools>\n\n"
            "Call a function by returning a JSON object with its name and arguments inside <tool_call></tool_call> "
            'tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )


def check_call(name: object, arguments: object) -> str | None:
    """Why a tool call is invalid ("unknown_tool", "bad_arguments: ..."), or None for a valid one."""
    if not isinstance(name, str) or name not in TOOL_NAMES:
        return "unknown_tool"
    if not isinstance(arguments, dict):
        return "bad_arguments: arguments are not an object"
    error = next(iter(_VALIDATORS[name].iter_errors(arguments)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "arguments"
        return f"bad_arguments: {where}: {error.message}"
    return None


def normalize_call(call: dict) -> dict:
    """Lenient forms models write, made canonical: a single query or url string becomes a list."""
    args = dict(call.get("arguments") or {})
    for key in ("query", "url"):
        if isinstance(args.get(key), str):
            args[key] = [args[key]]
    return {"name": call.get("name"), "arguments": args}


def parse_turn(text: str, reasoning: str = "") -> Turn:
    """Parse one model output. `reasoning` is the backend's reasoning_content (reasoning models), used as the
    thought when present. A turn that breaks the format gets `error`; it is never guessed into shape."""
    raw = text
    text = text.split("<tool_response>", 1)[0]  # a model that writes the tool's answer itself: cut it there
    think = reasoning.strip()
    found = _THINK.search(text)
    if found:
        think = think or found.group(1).strip()
        text = text[: found.start()] + text[found.end() :]
    elif "</think>" in text:  # templates that open <think> in the prompt leave only the closing tag
        before, _, text = text.partition("</think>")
        think = think or before.strip()
    turn = Turn(think=think, raw=raw)
    calls, answers = _TOOL_CALL.findall(text), _ANSWER.findall(text)
    rest = _ANSWER.sub("", _TOOL_CALL.sub("", text))
    turn.text = rest.strip()
    if unclosed := [t for t in _TAGS if f"<{t}>" in rest or f"</{t}>" in rest]:
        turn.error = f"unbalanced_tag: <{unclosed[0]}>"
    elif calls and answers:
        turn.error = "both_tool_call_and_answer"
    elif len(calls) > 1 or len(answers) > 1:
        turn.error = "several_actions"
    elif answers:
        if answers[0].strip():
            turn.answer = answers[0].strip()
        else:
            turn.error = "empty_answer"
    elif calls:
        _read_call(turn, calls[0])
    else:
        turn.error = "no_action"
    return turn


def _read_call(turn: Turn, body: str) -> None:
    try:
        call = json.loads(body.strip())
    except json.JSONDecodeError as e:
        turn.error = f"tool_call_not_json: {e.msg}"
        return
    if not isinstance(call, dict) or "name" not in call:
        turn.error = "tool_call_not_json: expected an object with name and arguments"
        return
    call = normalize_call(call)
    if error := check_call(call["name"], call["arguments"]):
        turn.error = error
    elif call["name"] == "answer":  # the answer tool is the <answer> tag by another name
        turn.answer = call["arguments"]["answer"].strip()
    else:
        turn.call = call


def turn_grammar(tools: list[dict], max_new_tokens: int = 2048, urls: list[str] | None = None) -> str:
    """One turn as a Lark grammar (llguidance's dialect, which vLLM's and SGLang's grammar backends read too):
    `<think>` thoughts `</think>`, then exactly one `<tool_call>` whose JSON names a listed tool with arguments valid
    against its schema, or an `<answer>`. The layout is `render_assistant`'s, so a constrained turn reads exactly
    as its stored form renders. The action keeps its share of `max_new_tokens` (action_tokens), and a call's lists
    and strings are bounded to fit it (call_bounds); thoughts are held to 2 characters for each token left (text
    runs 3 to 4 a token; a small model's loops nearer 2), so the action is not cut off.
    With `urls` (those the conversation has shown so far), visit may name only those, as the funnel requires, and
    only those that fit the action beside a short goal (visit_urls); with none, the turn cannot visit."""
    items, chars = call_bounds(max_new_tokens)
    if urls is not None:
        urls = visit_urls(urls, max_new_tokens)
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": _arguments(name, parameters, urls, items, chars)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for name, parameters in ((t["function"]["name"], t["function"]["parameters"]) for t in tools)
        if not (name == "visit" and urls is not None and not urls)
    ]
    call_schema = json.dumps({"anyOf": calls, "x-guidance": JSON_OPTIONS})
    think_chars = max(16, (max_new_tokens - action_tokens(max_new_tokens)) * 2)
    return "\n".join(
        [
            "start: THINK action",
            f"THINK: /<think>\\n[^<]{{1,{think_chars}}}\\n<\\/think>\\n/",
            'action: tool_call | "<answer>" answer "</answer>"',
            'tool_call: "<tool_call>\\n" call "\\n</tool_call>"',
            f"call: %json {call_schema}",
            f"answer[max_tokens={MAX_ANSWER_TOKENS}]: /[^<\\n]+/",
        ]
    )


def action_tokens(max_new_tokens: int) -> int:
    """Tokens a constrained turn keeps for its action: half its budget, at least TURN_OVERHEAD_TOKENS, and no more
    than the longest call can take."""
    longest = CALL_FRAME_TOKENS + (MAX_CALL_ITEMS + 1) * (MAX_ARGUMENT_CHARS + 4)
    return min(longest, max(TURN_OVERHEAD_TOKENS, max_new_tokens // 2))


def call_bounds(max_new_tokens: int) -> tuple[int, int]:
    """(items per list, characters per string) of a constrained call, so that the longest call fits the tokens its
    turn keeps for the action even when what the model writes runs one token a character (digits and underscores
    come close; the fixed text around it, at least two): a small budget gets one query or URL and shorter strings.
    A call holds a list and at most one more string (visit's goal)."""
    room = action_tokens(max_new_tokens) - CALL_FRAME_TOKENS
    items = MAX_CALL_ITEMS if room >= 40 * (MAX_CALL_ITEMS + 1) else 1
    return items, max(8, min(MAX_ARGUMENT_CHARS, room // (items + 1) - 4))


def visit_urls(urls: list[str], max_new_tokens: int) -> list[str]:
    """The shown URLs a constrained visit may name: those of which `items` fit the action beside a goal of
    VISIT_GOAL_CHARS, a URL taken at 2 characters a token (copied text, not a ramble: digits run 1, words 4)."""
    items, _ = call_bounds(max_new_tokens)
    room = action_tokens(max_new_tokens) - CALL_FRAME_TOKENS - VISIT_GOAL_CHARS - 4
    return [u for u in urls if items * (len(u) // 2 + 4) <= room]


def _arguments(name: str, parameters: dict, urls: list[str] | None, items: int, chars: int) -> dict:
    """One tool's arguments in the turn grammar: tightened to `items` and `chars` (visit's goal to
    VISIT_GOAL_CHARS), and visit's urls among those shown."""
    if name == "visit":
        chars = min(chars, VISIT_GOAL_CHARS)
    schema = tightened(bounded(parameters, chars), items)
    if name == "visit" and urls and isinstance(schema.get("properties", {}).get("url"), dict):
        schema["properties"]["url"]["items"] = {"enum": urls}
    return schema


def bounded(schema: dict, chars: int = MAX_ARGUMENT_CHARS) -> dict:
    """`schema` with every string given a maximum length: everything it accepts, the original does, and a
    constrained call ends within a turn's budget."""
    out = dict(schema)
    if out.get("type") == "string":
        out["maxLength"] = min(out.get("maxLength", chars), chars)
    if isinstance(out.get("items"), dict):
        out["items"] = bounded(out["items"], chars)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: bounded(v, chars) for k, v in out["properties"].items()}
    return out


def seen_urls(messages: list[dict]) -> list[str]:
    """The URLs that the question and the tool responses so far have shown, in order, each once."""
    shown = [m["content"] for m in messages if m["role"] in ("user", "tool") and isinstance(m.get("content"), str)]
    return list(dict.fromkeys(u.rstrip("/.,") for text in shown for u in _URL.findall(text)))


# --- stored messages <-> text ------------------------------------------------------------------


def assistant_message(turn: Turn, call_id: str | None = None) -> dict:
    """The stored (TRL) form of a valid turn: thought in reasoning_content, the call in tool_calls."""
    message: dict = {"role": "assistant", "content": turn.text}
    if turn.think:
        message["reasoning_content"] = turn.think
    if turn.answer is not None:
        message["content"] = f"{turn.text}\n<answer>{turn.answer}</answer>".strip()
    elif turn.call is not None:
        message["tool_calls"] = [{"type": "function", "id": call_id or "call_0", "function": dict(turn.call)}]
    return message


def render_call(function: dict) -> str:
    args = json.dumps(function["arguments"], ensure_ascii=False)
    return f'<tool_call>\n{{"name": {json.dumps(function["name"])}, "arguments": {args}}}\n</tool_call>'


def render_assistant(message: dict, think: bool = True) -> str:
    """An assistant turn as the model wrote it: <think>, any free text, then the tool call or the answer."""
    parts = []
    if think and message.get("reasoning_content"):
        parts.append(f"<think>\n{message['reasoning_content']}\n</think>")
    if message.get("content"):
        parts.append(message["content"])
    parts.extend(render_call(c["function"]) for c in message.get("tool_calls") or [])
    return "\n".join(parts)


def render_tool_response(content: str) -> str:
    return f"<tool_response>\n{content}\n</tool_response>"


def text_messages(messages: list[dict]) -> list[dict]:
    """Stored messages as plain chat messages (what any chat backend is sent): tool turns become user turns."""
    out = []
    for m in messages:
        if m["role"] == "assistant":
            out.append({"role": "assistant", "content": render_assistant(m)})
        elif m["role"] == "tool":
            out.append({"role": "user", "content": render_tool_response(m["content"])})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def chatml(messages: list[dict]) -> str:
    """A whole trajectory in WebDancer's chatml text form."""
    return "\n".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in text_messages(messages))
