"""Prompts live as files in synth/prompts/; a prompt's version is the hash of its text, recorded in `meta`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template


@dataclass(frozen=True)
class Prompt:
    """A prompt template ($name placeholders, so JSON braces need no escaping) and its version."""

    name: str
    text: str

    @property
    def version(self) -> str:
        """First 12 hex chars of the text's sha256: changes whenever the wording does."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def render(self, **values: object) -> str:
        """The prompt with every $placeholder filled; a missing value raises KeyError naming it."""
        return Template(self.text).substitute({k: str(v) for k, v in values.items()})


@cache
def load_prompt(name: str) -> Prompt:
    """synth/prompts/<name>.txt, read once per process."""
    text = resources.files("wdtk.synth").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
    return Prompt(name, text)


def prompt_name(version: str) -> str | None:
    """The name of the prompt in synth/prompts/ whose version is `version`, or None (for error messages)."""
    for path in resources.files("wdtk.synth").joinpath("prompts").iterdir():
        if path.name.endswith(".txt") and load_prompt(path.name.removesuffix(".txt")).version == version:
            return path.name.removesuffix(".txt")
    return None
