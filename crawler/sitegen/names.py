"""Syllable-based fictional names, unique across the whole site (case-insensitively)."""

import random

ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "th", "c", "w", "br", "dr", "gr",
          "tr", "st", "sh", "b", "d", "l", "m", "r", "s", "t", "v")  # fmt: skip
NUCLEI = ("a", "e", "i", "o", "u", "a", "e", "o", "ia", "ou")
INNER_CODAS = ("", "", "", "", "n", "r", "l")
FINAL_CODAS = ("n", "r", "l", "s", "m", "nd", "rn", "st", "th", "ld", "", "", "")
# Every word carries one rare piece (an unusual onset or vowel), which keeps words away from real names.
RARE_ONSETS = ("vh", "zh", "kh", "qu", "x", "dh")
RARE_NUCLEI = ("ae", "y", "oe", "ei")
FEMININE_ENDINGS = ("a", "ine", "elle", "ys", "a", "ia", "wen")
MASCULINE_ENDINGS = ("", "an", "or", "ek", "", "on", "ald")


class NameGen:
    """Draws fresh words and names from a seeded RNG and never returns the same name twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int | None = None) -> str:
        """A capitalised pronounceable word of 2-3 syllables with one rare piece."""
        rng = self.rng
        n = syllables or rng.choice((2, 2, 3))
        rare = rng.randrange(n)
        parts = []
        for i in range(n):
            onset = "" if i == 0 and rng.random() < 0.2 else rng.choice(ONSETS)
            nucleus = rng.choice(NUCLEI if onset else NUCLEI[:5])
            if i == rare and rng.random() < 0.4:
                onset = rng.choice(RARE_ONSETS)
            elif i == rare:
                nucleus = rng.choice(RARE_NUCLEI)
            parts.append(onset + nucleus + rng.choice(FINAL_CODAS if i == n - 1 else INNER_CODAS))
        return "".join(parts).capitalize()

    def claim(self, name: str) -> bool:
        """Reserve `name`; False when it (or a case variant) was already taken."""
        key = name.lower()
        if key in self.used:
            return False
        self.used.add(key)
        return True

    def unique(self, make) -> str:
        """Call `make()` until it yields an unclaimed name, then claim it."""
        for _ in range(1000):
            name = make()
            if self.claim(name):
                return name
        raise RuntimeError("name space exhausted")

    def given(self, gender: str) -> str:
        """A given name with a gendered ending."""
        endings = FEMININE_ENDINGS if gender == "f" else MASCULINE_ENDINGS
        stem = self.word(self.rng.choice((1, 2)))
        return stem.rstrip("aeiou") + self.rng.choice(endings) if self.rng.random() < 0.6 else stem

    def person(self, gender: str) -> str:
        """A unique 'Given Family' name."""
        return self.unique(lambda: f"{self.given(gender)} {self.word()}")

    def settlement(self, suffixes: tuple[str, ...]) -> str:
        """A unique place name, sometimes with a settlement suffix."""
        return self.unique(lambda: self.suffixed(self.rng.choice(suffixes)))

    def suffixed(self, suffix: str) -> str:
        """A word with `suffix`; suffixed words are kept short."""
        return self.word(2 if suffix else None) + suffix

    def fresh(self) -> str:
        """A unique bare word (countries, regions, name stems)."""
        return self.unique(self.word)


def slugify(name: str) -> str:
    """MediaWiki-style slug: spaces become underscores; names use only ASCII letters, digits, '-' and spaces."""
    return name.replace(" ", "_")
