"""Syllable-based fictional names, unique across the whole site (case-insensitively)."""

import random

ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "tr", "v",
          "z", "sh", "th", "c", "j", "w")  # fmt: skip
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ia", "ou")
CODAS = ("", "", "", "", "n", "r", "l", "s", "m", "nd", "rk", "st", "v", "th", "ld")
# Every word carries one of these rare pieces, which keeps generated words away from real names.
MARKERS = ("ae", "oe", "yr", "yth", "vh", "zh", "kh", "qu", "ix", "eau", "ym", "aev", "oth", "ael", "ysk")
FEMININE_ENDINGS = ("a", "ine", "elle", "ys", "a", "ia", "wen")
MASCULINE_ENDINGS = ("", "an", "or", "ek", "", "on", "ald")


class NameGen:
    """Draws fresh words and names from a seeded RNG and never returns the same name twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int | None = None) -> str:
        """A capitalised pronounceable word of 2-3 syllables containing a marker piece."""
        rng = self.rng
        n = syllables or rng.choice((2, 2, 3))
        parts = [rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(n)]
        marker = rng.choice(MARKERS)
        slot = rng.randrange(n)
        parts[slot] = (parts[slot][:1] + marker) if slot else (marker + parts[slot][-1:])
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
        return self.unique(lambda: self.word() + self.rng.choice(suffixes))

    def fresh(self) -> str:
        """A unique bare word (countries, regions, name stems)."""
        return self.unique(self.word)


def slugify(name: str) -> str:
    """MediaWiki-style slug: spaces become underscores; names use only ASCII letters, digits, '-' and spaces."""
    return name.replace(" ", "_")
