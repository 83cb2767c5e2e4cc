"""Main content of the pages that are not entity articles: main page, about, index, category and talk pages."""

import random
from collections import Counter

from .docs import DOCS
from .docs import TITLE as HANDBOOK
from .names import NameGen
from .plan import Category, IndexPage, Plan
from .portal import notice_path
from .prose import bullet_list, entity_link
from .traps import MIRROR_PATH, OFFSITE
from .world import Entity

TYPE_WORDS = {"person": "person", "place": "place", "organisation": "organisation", "work": "work", "event": "event"}
TALK_TOPICS = (
    ("Sources for the early years", "Most of this section rests on a single biography. Could someone add a second "
     "source before the next review?"),
    ("Infobox", "I have tidied the infobox and moved the notes into the body of the article."),
    ("Requested move", "The current title follows the most common spelling in recent sources, so I would keep it."),
    ("Neutral point of view", "Parts of the reception section read like a review. I have toned down two sentences."),
    ("Dates", "The dates here agree with the regional register, so I have removed the cleanup tag."),
    ("Images", "Does anyone have a photograph or drawing that could be used here?"),
)  # fmt: skip


def letter_bar(plan: Plan) -> str:
    """Links to the first index page of every letter."""
    links = [f'<a href="{p.path}">{p.letter}</a>' for p in plan.index_pages if p.number == 1]
    return '<ul class="letters">\n' + "\n".join(f"<li>{link}</li>" for link in links) + "\n</ul>"


def main_page(plan: Plan) -> str:
    """The front page: counts, the A-Z bar, a selected article and the largest categories."""
    counts = Counter(e.type for e in plan.articles)
    summary = ", ".join(f"{counts[t]:,} {t}s" for t in TYPE_WORDS if counts[t])
    selected = plan.world.by_id[plan.featured[0]]
    largest = sorted(plan.categories, key=lambda c: (-len(c.members), c.path))[:20]
    return "\n".join([
        "<h1>Welcome to the Orrery Compendium</h1>",
        f"<p>This encyclopedia has {len(plan.articles):,} articles: {summary}.</p>",
        '<h2 id="Browse">Browse the index</h2>', letter_bar(plan),
        '<h2 id="Selected">Selected article</h2>',
        f"<p>This week's selected article is {entity_link(selected)}. Read it and follow its links to related "
        "articles.</p>",
        '<h2 id="Categories">Large categories</h2>',
        bullet_list(f'<a href="{c.path}">{c.title}</a> ({len(c.members)})' for c in largest),
        '<h2 id="More">More</h2>', '<p>Read <a href="/about.html">about this site</a> and how it is made, or the '
        f'<a href="{DOCS}/index.html">{HANDBOOK}</a> on the tools that read its records.</p>',
    ])  # fmt: skip


def about_page(plan: Plan) -> str:
    """The about page: purpose, statistics, licence, privacy, contact and mirrors (an off-site redirect)."""
    sections = (
        ("Purpose", "This encyclopedia describes an invented world. It exists to test crawlers, text extraction "
         "and question answering systems on material that no model has seen."),
        ("Statistics", f"The site has {plan.pages:,} pages, of which {len(plan.articles):,} are articles and "
         f"{len(plan.categories):,} are category pages."),
        ("Licence", "All text may be reused under the terms of version 2.0 of the Orrery Open Licence."),
        ("Privacy", "This site sets no cookies and keeps no record of visitors."),
        ("Contact", "Corrections can be proposed on the talk page of any article."),
        ("Disclaimer", "Nothing here describes real people or places; any resemblance is coincidental."),
        ("Citing", "Cite an article by its title and address."),
    )  # fmt: skip
    parts = ["<h1>About</h1>"]
    for heading, text in sections:
        parts += [f'<h2 id="{heading.lower()}">{heading}</h2>', f"<p>{text}</p>"]
    mirrors = [
        f'<a href="{MIRROR_PATH}">Mirror of this site</a>',
        f'<a class="external" href="{OFFSITE}/about">The project behind the site</a>',
    ]
    parts += ['<h2 id="mirrors">Mirrors</h2>', bullet_list(mirrors)]
    notices = [f'<a href="{notice_path(title)}">{title}</a>' for title, _ in plan.notices]
    parts += ['<h2 id="notices">Borough notices</h2>', bullet_list(notices)]
    return "\n".join(parts)


def index_page(plan: Plan, page: IndexPage) -> str:
    """One alphabetical index page with the letter bar and previous/next links."""
    suffix = f" (page {page.number} of {page.pages_for_letter})" if page.pages_for_letter > 1 else ""
    by_id = plan.world.by_id
    items = [f"{entity_link(by_id[i])} ({TYPE_WORDS[by_id[i].type]})" for i in page.members]
    nav = []
    if page.number > 1:
        nav.append(f'<a href="{sibling(page, page.number - 1)}" rel="prev">Previous page</a>')
    if page.number < page.pages_for_letter:
        nav.append(f'<a href="{sibling(page, page.number + 1)}" rel="next">Next page</a>')
    parts = [f"<h1>Index: {page.letter}{suffix}</h1>", letter_bar(plan),
             f"<p>Articles whose titles begin with {page.letter}.</p>", bullet_list(items)]  # fmt: skip
    if nav:
        parts.append(f'<p class="pagination">{" | ".join(nav)}</p>')
    return "\n".join(parts)


def sibling(page: IndexPage, number: int) -> str:
    """Path of another page of the same letter."""
    return IndexPage(page.letter, number, page.pages_for_letter, []).path


def category_page(plan: Plan, cat: Category) -> str:
    """A category: intro sentence naming the shared value, then the member list."""
    value = entity_link(plan.world.by_id[cat.object]) if cat.object in plan.world.by_id else cat.object_text
    items = [entity_link(plan.world.by_id[m]) for m in cat.members]
    return "\n".join([
        f"<h1>Category: {cat.title}</h1>", f"<p>{cat.intro.format(o=value)}</p>",
        f'<h2 id="Pages">Pages in category "{cat.title}"</h2>',
        f"<p>The following {len(items)} pages are in this category.</p>", bullet_list(items),
    ])  # fmt: skip


def talk_page(entity: Entity, rng: random.Random) -> str:
    """A short discussion page with signed comments."""
    names = NameGen(rng)
    parts = [f"<h1>Talk:{entity.name}</h1>",
             f"<p>This is the discussion page for the article {entity_link(entity)}.</p>"]  # fmt: skip
    for heading, text in rng.sample(TALK_TOPICS, rng.randint(2, 4)):
        user = names.word()
        stamp = f"{rng.randint(10, 23)}:{rng.randint(10, 59)}, {rng.randint(1, 28)} May {rng.randint(2008, 2020)}"
        parts += [f"<h2>{heading}</h2>", f'<p>{text} <span class="signature">{user} {stamp}</span></p>']
    return "\n".join(parts)
