"""Write and read the ground truth under `_truth/` (layout documented in the package docstring)."""

import html
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from .chrome import SITE_NAME, WIKI_CHROME_STRINGS
from .docs_chrome import DOCS_CHROME_STRINGS
from .plan import Plan
from .portal import PORTAL_CHROME_STRINGS
from .world import RELATIONS

TRUTH_DIR = "_truth"
# Each page template's own chrome strings: on every page of the template, never in its main text.
TEMPLATE_CHROME = {"wiki": WIKI_CHROME_STRINGS, "docs": DOCS_CHROME_STRINGS, "portal": PORTAL_CHROME_STRINGS}
CHROME_STRINGS = tuple(s for strings in TEMPLATE_CHROME.values() for s in strings)
_TEMPLATES = {"contents": "docs", "docs": "docs", "modindex": "docs", "portal": "portal"}
# Where a line ends in the rendered page: block elements and <br>. Cells end with a space instead.
_BLOCK_END = re.compile(r"<(?:/(?:p|div|h[1-6]|li|ul|ol|dl|dt|dd|tr|table|caption|pre|blockquote)|br\s*/?)>")
_CELL_END = re.compile(r"</t[dh]>")
_TAG = re.compile(r"<[^>]+>")


def template_of(kind: str) -> str:
    """The page template ('wiki', 'docs' or 'portal') that pages of `kind` are wrapped in."""
    return _TEMPLATES.get(kind, "wiki")


def fragment_text(fragment: str) -> str:
    """The visible text of an HTML fragment, a line per block: a page's true main text in the ground truth."""
    text = html.unescape(_TAG.sub("", _CELL_END.sub(" ", _BLOCK_END.sub("\n", fragment))))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def write_truth(out: Path, plan: Plan, records: list[dict], fact_pages: dict[str, list[str]],
                texts: list[dict]) -> None:  # fmt: skip
    """Write entities, facts, pages, main texts, categories and site-level traps as JSON."""
    folder = out / TRUTH_DIR
    write_list(folder / "entities.json", [entity_record(plan, e) for e in plan.articles])
    write_list(folder / "facts.json", [
        {"id": f.id, "subject": f.subject, "relation": f.relation, "object": f.object, "object_type": f.kind,
         "object_text": f.text, "pages": fact_pages.get(f.id, [])}
        for f in plan.world.facts
    ])  # fmt: skip
    write_list(folder / "pages.json", records)
    write_list(folder / "texts.json", texts)
    write_list(folder / "categories.json", [
        {"path": c.path, "title": c.title, "subject_type": c.subject_type, "relation": c.relation,
         "object": c.object, "object_text": c.object_text, "members": c.members}
        for c in plan.categories
    ])  # fmt: skip
    (folder / "site.json").write_text(json.dumps(site_record(plan, records), indent=1) + "\n")


def write_list(path: Path, items: list[dict]) -> None:
    """A JSON array with one item per line: diffable, and still one json.load away."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n]\n")


def entity_record(plan: Plan, entity) -> dict:
    """One entity with attributes in relation order; entity-valued attributes hold entity ids."""
    attrs = {r: entity.attrs[r] for r in RELATIONS[entity.type] if r in entity.attrs}
    record = {"id": entity.id, "type": entity.type, "name": entity.name, "url": entity.url, "attributes": attrs}
    if entity.id in plan.talk:
        record["talk_url"] = f"/private/talk/{entity.slug}.html"
    record["categories"] = [c.path for c in plan.categories_of.get(entity.id, ())]
    return record


def site_record(plan: Plan, records: list[dict]) -> dict:
    """Site-wide truth: chrome strings, robots rules, redirects, broken links, files and URL variants."""
    offsite = defaultdict(list)
    for record in records:
        for href in record["links"]:
            if href.startswith(("http://", "https://")):
                offsite[href].append(record["path"])
    return {
        "seed": plan.seed,
        "page_count": len(records),
        "page_kinds": dict(sorted(Counter(r["kind"] for r in records).items())),
        "site_name": SITE_NAME,
        "chrome_strings": list(CHROME_STRINGS),
        "template_chrome": {name: list(strings) for name, strings in TEMPLATE_CHROME.items()},
        "featured": [plan.world.by_id[i].url for i in plan.featured],
        "robots_disallow": ["/private/", "/_truth/", "/_redirects.json", "/eval.jsonl"],
        "redirects": [
            {
                "from": src,
                "to": dst,
                "final": final_target(plan.redirects, src),
                "offsite": not final_target(plan.redirects, src).startswith("/"),
            }
            for src, dst in sorted(plan.redirects.items())
        ],  # fmt: skip
        "broken_links": [{"path": p, "linked_from": sorted(set(s))} for p, s in sorted(plan.broken.items())],
        "files": [
            {
                "path": f.path,
                "kind": f.kind,
                "content_type": f.content_type,
                "entity": f.entity,
                "linked_from": [plan.world.by_id[f.entity].url],
            }
            for f in plan.files
        ],  # fmt: skip
        "url_variants": [{"target": t, "hrefs": h} for t, h in sorted(plan.variants.items())],
        "offsite_links": [{"href": h, "linked_from": p} for h, p in sorted(offsite.items())],
    }


def final_target(redirects: dict[str, str], path: str) -> str:
    """Follow a redirect chain to its end."""
    seen = set()
    while path in redirects and path not in seen:
        seen.add(path)
        path = redirects[path]
    return path


def load_truth(site_dir: Path) -> dict:
    """Everything under `_truth/` as one dict: site.json's keys plus entities, facts, pages, categories, texts."""
    folder = Path(site_dir) / TRUTH_DIR
    truth = json.loads((folder / "site.json").read_text())
    for name in ("entities", "facts", "pages", "categories", "texts"):
        truth[name] = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return truth
