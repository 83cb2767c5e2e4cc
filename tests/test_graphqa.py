"""Graph-walk synthesis (synth/linkgraph.py, synth/graphqa.py) against the generated site: walks follow in-scope links,
never navigation links or hubs, and have the hops asked for; questions the scripted model composes from the site's
truth are kept when every check passes and rejected with their reason when they leak, cite unstated claims or hide
nothing; a SIGKILLed `wdtk synth graphqa` resumes without repeating a completed LLM call."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from servers.kill import sigkill_after_requests
from servers.planted_model import GRAPH_KINDS, PlantedModel
from servers.search_server import site_page_records
from servers.truth_model import TruthModel

from wdtk.crawler.scope import canonical
from wdtk.report.truth import World, literal_values
from wdtk.report.verdicts import audit_qa
from wdtk.schemas import mark_complete, read_records, validate, write_records
from wdtk.synth import graphqa
from wdtk.synth.guards import PING  # each command's test request before any work
from wdtk.synth.linkgraph import LinkGraph, WalkConfig
from wdtk.synth.parallel import Backends, RunOptions
from wdtk.synth.search.bm25 import build_index
from wdtk.synth.text import normalize


@pytest.fixture(scope="module")
def crawl(site_dir, site_server, truth, tmp_path_factory) -> Path:
    """Page records of the site's public pages with every link as written (navigation chrome, lists, variants)."""
    links = {p["path"]: p["links"] for p in truth["pages"]}
    records = []
    for page in site_page_records(site_dir, site_server):
        path = urlsplit(page["url"]).path
        hrefs = (h.split("#")[0] for h in links.get(path, ()))
        page["links"] = list(dict.fromkeys(urljoin(page["url"], h) for h in hrefs if h))  # as the crawler resolves
        records.append(page)
    out = tmp_path_factory.mktemp("graph") / "pages"
    write_records(records, out / "00000.jsonl.gz", kind="page")
    mark_complete(out)  # as a finished crawl leaves it: stage commands refuse pages without the marker
    build_index(out, out.parent / "index")
    return out


def test_walks_follow_in_scope_links_and_skip_navigation_and_hubs(crawl, site_server, truth):
    pages = list(read_records(crawl))
    cfg = WalkConfig(min_hops=3, max_hops=5)
    graph = LinkGraph.build(pages, cfg)
    by_url = {p["final_url"]: p for p in pages}
    counts = Counter(link for p in pages for link in set(p["links"]))
    nav = {link for link, n in counts.items() if n > cfg.nav_link_share * len(pages)}
    hubs = {urlsplit(graph.pages[h]["url"]).path for h in graph.hubs}
    articles = [p for p in pages if "/wiki/" in p["url"]]
    assert {"/index.html", "/index/A.html", "/index/B.html"} <= hubs  # list pages
    assert sum(h.startswith("/wiki/") for h in hubs) < 0.05 * len(articles)  # few articles link that widely
    assert nav and all(u in nav for u in (f"{site_server}/about.html", f"{site_server}/index.html"))
    walks = list(graph.walks())
    assert len(walks) > 100
    for walk in walks:
        urls = walk["urls"]
        assert 3 <= len(urls) - 1 <= 5 and len(set(urls)) == len(urls)  # the declared hops, no page twice
        for a, b in zip(urls, urls[1:], strict=False):
            assert b in by_url and b in reached(by_url[a]), (a, b)  # a link the page has, to a crawled page
            assert b not in nav and urlsplit(b).path not in hubs
    for variant in truth["url_variants"]:  # X.html?view=full&lang=en, which the server answers with X.html
        target = by_url[site_server + variant["target"]]["id"]
        linking = [p for p in pages if any(site_server + h in p["links"] for h in variant["hrefs"])]
        assert linking and all(target in graph.links[p["id"]] for p in linking)
    shared = sum(w["shared"] for w in walks) / sum(len(w["urls"]) - 1 for w in walks)
    assert shared > 0.9  # steps mostly follow a fact: the page names the next one's subject
    assert [w["id"] for w in LinkGraph.build(pages, cfg).walks()] == [w["id"] for w in walks]  # reproducible
    other = [w["id"] for w in LinkGraph.build(pages, WalkConfig(min_hops=3, max_hops=5, seed=1)).walks()]
    assert other != [w["id"] for w in walks]


def reached(page: dict) -> set[str]:
    """The URLs a page's links reach, in the crawler's form: as written, or without a query the server ignores."""
    return {u for link in page["links"] for u in (canonical(link), canonical(link).split("?")[0])}


def test_links_find_their_pages_in_the_crawlers_form_and_never_by_a_guess():
    site = "https://w.example"
    urls = ["/wiki/A.html", "/wiki/B%20C.html", "/index.php?title=D", "/index.php?title=E", "/old/F"]
    pages = [
        {"id": f"p{i}", "url": site + u, "final_url": site + u, "title": u, "text": "Some text.", "links": []}
        for i, u in enumerate(urls)
    ]
    pages[4]["final_url"] = f"{site}/wiki/F.html"  # a redirect: links to either URL reach it
    links = ["/wiki/B C.html#History", "/wiki/A.html?lang=en", "/index.php?title=Z&action=view",
             "/index.php?title=E", "/wiki/F.html", "/wiki/../wiki/B%20C.html"]  # fmt: skip
    pages[0]["links"] = [site + link for link in links] + ["http://[::1"]
    graph = LinkGraph.build(pages, WalkConfig(nav_link_share=1.0))
    assert graph.links["p0"] == ["p1", "p3", "p4"]  # not itself, not a guess among index.php?title=... pages


def backends(server, tmp_path, index=None) -> Backends:
    return Backends("openai:truth", server.base_url, str(tmp_path / "cache.sqlite"), index, concurrency=8)


def test_graphqa_keeps_grounded_unique_questions_with_their_walk(openai_server, truth, site_server, crawl, tmp_path):
    openai_server.responder = TruthModel(truth, site_server)
    cfg = graphqa.GraphQAConfig(walk=WalkConfig(min_hops=3, max_hops=4))
    b = backends(openai_server, tmp_path, f"bm25:{crawl.parent / 'index'}")
    summary = graphqa.run(crawl, tmp_path / "out", cfg, b, RunOptions(workers=0, partition_size=8), max_walks=16)
    kept = list(read_records(tmp_path / "out" / "records", kind="qa"))
    assert summary["items"] == 16 and len(kept) >= 8
    world = World(truth)
    for r in kept:
        assert r["type"] == "GRAPH" and r["source"] == "graphqa"
        assert len(r["hops"]) == len(r["walk"]) - 1 in (3, 4) and r["hops"][0]["from"] == r["walk"][0]
        assert r["evidence_urls"] and set(r["evidence_urls"]) <= set(r["walk"])
        assert all(c["source_url"] in r["walk"] for c in r["claims"])
        assert r["answer"] not in r["question"] and r["meta"]["uniqueness"]["method"] == "search"
        verdict, _ = audit_qa(r, world)
        assert verdict["correct"] and verdict["hops"] >= 3, verdict["why"]
    assert sum(audit_qa(r, world)[0]["unique"] for r in kept) >= 0.9 * len(kept)
    assert sum(any("approx" in c for c in r["claims"]) for r in kept) >= len(kept) / 2  # dates and numbers blurred
    assert summary["tally"] and set(summary["tally"]) <= {"3", "4"}
    prompts = [r["messages"][0]["content"] for r in openai_server.requests]
    extract = [p for p in prompts if p.startswith("List the facts the web page")]
    assert len(extract) == len(set(extract))  # one extraction call per page, shared by the walks through it
    compose = next(p for p in prompts if p.startswith("You write one hard question"))
    assert "[Page 1]" in compose and "URL: " in compose and " | " in compose


def test_unreadable_replies_are_rejected_with_the_raw_text(openai_server, crawl, tmp_path):
    openai_server.responder = lambda body: "Sure! This page is about a person."
    cfg = graphqa.GraphQAConfig(walk=WalkConfig(min_hops=3, max_hops=3), rivals=None)
    summary = graphqa.run(crawl, tmp_path / "out", cfg, backends(openai_server, tmp_path), RunOptions(workers=0), 2)
    assert summary["kept"] == 0 and summary["rejected"] == {"no_claims_extracted": 2}
    rejects = list(read_records(tmp_path / "out" / "rejects"))
    assert all(r["raw"] and r["raw"][0].startswith("Sure!") and len(r["urls"]) == 4 for r in rejects)


class Spoiler(TruthModel):
    """The careful model, except that its question for walk k carries mistake k of MISTAKES."""

    MISTAKES = ("leak", "unstated", "unblurred", "name", "fine")

    def __init__(self, truth, base):
        super().__init__(truth, base)
        self.made: dict[str, str] = {}

    def compose_prompt(self, prompt: str):
        q = super().compose_prompt(prompt)
        if not q["question"]:
            return q
        mistake = self.MISTAKES[len(self.made) % len(self.MISTAKES)]
        if mistake == "leak":
            q["question"] = q["question"][:-1] + f", that is {q['answer']}?"
        elif mistake == "unstated":  # a condition changed to a value its page does not state
            q["claims"][-1] = {k: v for k, v in q["claims"][-1].items() if k != "approx"} | {
                "object": "Nowhere Special"
            }
        elif mistake == "unblurred":
            blurred = next(c for c in q["claims"] if "approx" in c)
            q["question"] = q["question"].replace(blurred["approx"], blurred["object"])
        elif mistake == "name":
            q["question"] = q["question"][:-1] + f", as {q['hidden'][0]} was known?"
        self.made[q["question"]] = mistake
        return q


def test_graphqa_rejects_leaking_unsupported_and_unblurred_questions(
    openai_server, truth, site_server, crawl, tmp_path
):
    model = openai_server.responder = Spoiler(truth, site_server)
    cfg = graphqa.GraphQAConfig(walk=WalkConfig(min_hops=3, max_hops=3), rivals=None)
    summary = graphqa.run(crawl, tmp_path / "out", cfg, backends(openai_server, tmp_path), RunOptions(workers=0), 20)
    rejects = list(read_records(tmp_path / "out" / "rejects"))
    reasons = {"leak": "answer_in_question", "unstated": "claim_unsupported", "unblurred": "value_not_blurred",
               "name": "name_in_question"}  # fmt: skip
    for r in rejects:
        candidate = r.get("candidate", {})
        mistake = model.made.get(candidate.get("question"))
        if mistake in reasons:  # its own reason, or one the question had anyway
            anyway = ["too_few_hops", "answer_not_at_walk_end"]
            if set(normalize(candidate["answer"]).split()) <= set(normalize(candidate["question"]).split()):
                anyway.append("answer_in_question")  # a name written in that holds the answer ("X" in "X Bank")
            assert r["reason"] in (reasons[mistake], *anyway), (mistake, r["reason"])
    assert {r["reason"] for r in rejects} >= set(reasons.values())
    kept = list(read_records(tmp_path / "out" / "records"))
    assert kept and all(model.made[r["question"]] == "fine" for r in kept)
    checks = [
        r for r in openai_server.requests if r["messages"][0]["content"].startswith("Decide whether the web page")
    ]
    assert (
        checks and "Nowhere Special" in checks[0]["messages"][0]["content"]
    )  # the text check failed, the LLM said no
    assert summary["rejected"]["claim_unsupported"] >= 1


def test_every_planted_graph_question_is_the_mistake_it_names(truth, site_server, crawl):
    graph = LinkGraph.build(read_records(crawl), WalkConfig(min_hops=3, max_hops=4))
    walks = list(graph.walks())[:90]
    world, seen = World(truth), set()
    for seed in range(3):
        model = PlantedModel(truth, rate=1.0, seed=seed, base=site_server)
        for walk in walks:
            prompt = graphqa.load_prompt("graphqa_compose").render(
                walk=graphqa.render_walk(walk, [[]] * len(walk["pages"])), last=len(walk["pages"])
            )
            reply = model({"messages": [{"role": "user", "content": prompt}]})
            if not reply.startswith("{"):
                seen.add("unparseable")
                continue
            q = json.loads(reply)
            kind = model.planted.get(q["question"])
            if kind is None or not q["question"]:
                continue
            verdict, _ = audit_qa(
                model.as_record(q["answer"], q["claims"], q["hidden"]) | {"question": q["question"]}, world
            )
            if kind == "wrong_answer":
                assert verdict["correct"] is False or verdict["solutions"] > 1, verdict["why"]  # or it fits too
            elif kind == "ambiguous":
                assert verdict["solutions"] > 1
            elif kind == "leaked_answer":
                assert q["answer"] in q["question"]
            elif kind == "unstated_claim":
                assert not all(stated(model, c) for c in q["claims"])  # a claim its page does not state
            seen.add(kind)
    assert seen >= set(GRAPH_KINDS)


def stated(model: PlantedModel, claim: dict) -> bool:
    """Whether the claim's source page states a fact with its object."""
    return any(f["object_text"] == claim["object"] for f in model.stated_on[model.path(claim["source_url"])])


def test_hops_count_a_blurred_value_as_the_range_the_question_states():
    """Two works blurred to one decade: the question names "the 2000s" once, one hop from the answer, as the audit
    counts it; the exact years (2000, 2001) would have made it three."""
    site = "https://w.example/wiki/"
    walk = {"pages": [{"url": site + "Songs", "title": "Songs"}, {"url": site + "Toel", "title": "Toel Thebenoe"},
                      {"url": site + "Vaestu", "title": "The Vaestu Cartographer"}]}  # fmt: skip
    answer = "The Vaestu Cartographer"

    def question(first: tuple[str, str]) -> dict:
        def claim(subject, relation, obj, page, approx=None) -> dict:
            return {"subject": subject, "relation": relation, "object": obj, "source_url": site + page} | (
                {"approx": approx} if approx else {}
            )

        claims = [
            claim("Songs", "author", "Toel Thebenoe", "Songs"),
            claim(answer, "author", "Toel Thebenoe", "Vaestu"),
            claim("Songs", "year", first[0], "Songs", first[1]),
            claim(answer, "year", "2001", "Vaestu", "the 2000s"),
            claim("Toel Thebenoe", "occupation", "clockmaker", "Toel"),
        ]
        text = f"Which work of the 2000s is by the clockmaker who wrote a work of {first[1]}?"
        return {"question": text, "answer": answer, "hidden": ["Songs", "Toel Thebenoe"], "claims": claims}

    cfg = graphqa.GraphQAConfig(walk=WalkConfig(min_hops=3, max_hops=3))
    assert graphqa.drop_reason(question(("2000", "the 2000s")), walk, cfg) == "too_few_hops"
    assert graphqa.drop_reason(question(("1994", "the 1990s")), walk, cfg) is None  # the 1990s: three hops away


def test_blurred_values_are_ranges_the_audit_matches():
    assert literal_values("the 1870s") == {("range", 1870, 1879)}
    assert literal_values("between 1,000 and 5,000") == {("range", 1000, 5000)}
    assert literal_values("before 1900") == {("range", float("-inf"), 1899)}
    assert literal_values("more than 500") == {("range", 501, float("inf"))}
    assert literal_values("the late 1870s") == {("range", 1876, 1879)}
    assert literal_values("1874") == {("year", 1874), ("number", 1874)}  # an exact value stays one


def test_sigkilled_graphqa_resumes_without_repeating_a_completed_call(
    openai_server, truth, site_server, crawl, tmp_path
):
    openai_server.responder = TruthModel(truth, site_server)
    openai_server.latency = 0.1
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "wdtk.cli", "synth", "graphqa", str(crawl), "-o", str(out), "--model",
           "openai:truth", "--api-base", openai_server.base_url, "--workers", "0", "--partition-size", "2",
           "--max-walks", "6", "--concurrency", "2", "--hops", "3..4"]  # fmt: skip
    ended = sigkill_after_requests(cmd, openai_server, 14, seconds=90)
    assert ended is None, ended  # still running, not refused at the start
    assert not (out / "summary.json").exists() and openai_server.request_count >= 14
    sent = sum(r["messages"] != PING for r in openai_server.requests)
    with closing(sqlite3.connect(out / "llm_cache.sqlite")) as db:  # the calls whose replies were saved: completed
        completed = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "graphqa:" in finished.stdout and "records kept from 6 inputs" in finished.stdout
    records = list(read_records(out / "records", kind="qa"))
    assert len({r["id"] for r in records}) == len(records) > 0
    bodies = [json.dumps(r["messages"], sort_keys=True) for r in openai_server.requests if r["messages"] != PING]
    # at most the calls it had not completed when killed: in flight (concurrency 2), or answered but not yet saved
    assert len(bodies) - len(set(bodies)) <= sent - completed <= 4
    for r in records:
        validate(r, "qa")


def test_wdtk_synth_runs_graphqa_as_a_step_and_the_audit_judges_it(
    openai_server, truth, site_dir, site_server, crawl, tmp_path
):
    openai_server.responder = TruthModel(truth, site_server)
    run = tmp_path / "run"
    write_records(read_records(crawl), run / "crawl" / "pages", kind="page")
    cli = [sys.executable, "-m", "wdtk.cli"]
    cmd = [*cli, "synth", "--dir", str(run), "--rewrites", "0", "--max-groups", "2", "--graphqa", "--hops", "3..4",
           "--max-walks", "8", "--workers", "0", "--model", "openai:truth",
           "--api-base", openai_server.base_url]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "crawlqa:" in proc.stdout and "graphqa:" in proc.stdout
    kept = list(read_records(run / "synth" / "graphqa" / "records", kind="qa"))
    assert kept and all(3 <= len(r["hops"]) <= 4 for r in kept)
    bad = subprocess.run([*cmd, "--hops", "5..3"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "MIN <= MAX" in bad.stderr
    filtered = subprocess.run([*cli, "filter", str(run / "synth" / "graphqa" / "records"), "-o", str(run / "filter")],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert filtered.returncode == 0, filtered.stderr[-2000:]
    audited = subprocess.run(
        [*cli, "audit", str(run), "--truth", str(site_dir)], capture_output=True, text=True, timeout=120
    )
    assert audited.returncode == 0, audited.stderr[-2000:]
    assert "graphqa: kept" in audited.stdout and "walk hops 3:" in audited.stdout
    summary = json.loads((run / "audit" / "summary.json").read_text())
    graph = summary["kept_by_method"]["graphqa"]
    assert graph["kept"] > 0 and set(graph["by_round"]) <= {"3", "4"} and summary["tokens"]["by_stage"]["graphqa"] > 0
    assert all(g["correct"] == 1.0 and g["mean_hops"] >= 3 for g in graph["by_round"].values())


def test_wdtk_synth_with_the_difficulty_gate_keeps_what_the_solver_fails(openai_server, truth, site_server, crawl,
                                                                         tmp_path):  # fmt: skip
    """`wdtk synth --difficulty`: every method's questions are tried by the solver inside its stage. The scripted
    solver answers questions of up to 3 hops: CRAWLQA's one-hop questions are all too easy (and still become E2HQA's
    seeds), E2HQA's two-hop rewrites too, and graphqa keeps only its 4-hop questions. A rerun calls nothing again."""
    from click.testing import CliRunner

    from wdtk.cli import main

    model = TruthModel(truth, site_server)
    model.easy_hops = 3
    openai_server.responder = model
    run = tmp_path / "run"
    write_records(read_records(crawl), run / "crawl" / "pages", kind="page")
    mark_complete(run / "crawl" / "pages")
    args = ["synth", "--dir", str(run), "--rewrites", "1", "--max-groups", "3", "--graphqa", "--hops", "3..4",
            "--max-walks", "12", "--workers", "0", "--model", "openai:truth", "--api-base", openai_server.base_url,
            "--difficulty", "--attempts", "2"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = run / "synth"

    def gated(method: str) -> tuple[list[dict], list[dict]]:
        kept = list(read_records(out / method / "records", kind="qa"))
        easy = [r for r in read_records(out / method / "rejects") if r["reason"] == "too_easy"]
        return kept, easy

    crawl_kept, crawl_easy = gated("crawlqa")
    assert not crawl_kept and crawl_easy
    assert all(r["record"]["meta"]["difficulty"] | {"solver": "-"} == {"solver": "-", "k": 2, "judge": "exact",
               "closed_book_pass": 1.0} for r in crawl_easy)  # fmt: skip
    seeds = {r["question"] for r in read_records(out / "e2hqa_seeds.jsonl")}
    assert {r["record"]["question"] for r in crawl_easy} <= seeds  # too easy for CRAWLQA: E2HQA's to harden
    e2_kept, e2_easy = gated("e2hqa")
    assert not e2_kept and e2_easy
    graph_kept, graph_easy = gated("graphqa")
    assert graph_kept and graph_easy
    assert all(model.known[r["question"]]["hops"] > 3 for r in graph_kept)
    assert all(r["meta"]["difficulty"]["closed_book_pass"] == 0.0 for r in graph_kept)
    assert all(model.known[r["record"]["question"]]["hops"] <= 3 for r in graph_easy)
    summary = json.loads((out / "graphqa" / "summary.json").read_text())
    assert summary["rejected"]["too_easy"] == len(graph_easy) and summary["kept"] == len(graph_kept)
    calls = sum(r["messages"] != PING for r in openai_server.requests)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert sum(r["messages"] != PING for r in openai_server.requests) == calls  # resumed: nothing asked twice


@pytest.mark.slow
def test_the_hardness_benchmark_runs_and_meets_its_graphqa_target(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    args = ["--groups", "30", "--walks", "25", "--max-rewrites", "1", "--max-hops", "4", "--out", str(tmp_path)]
    proc = subprocess.run([sys.executable, str(repo / "bench" / "hardness.py"), *args], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout.split("tok/kept", 1)[1].splitlines()[1:]
    rows = {line[:21].strip(): line[21:].split() for line in table if line.startswith(("CRAWLQA", "E2HQA", "graphqa"))}
    assert set(rows) == {"CRAWLQA", "E2HQA --rewrites 1", "graphqa --hops 3", "graphqa --hops 4"}
    for hops in ("3", "4"):
        inputs, kept, _, correct, unique, good, mean_hops, *_ = rows[f"graphqa --hops {hops}"]
        assert int(kept) > 0 and float(good) >= 0.85 and float(mean_hops) >= 3  # the README: >= 0.95 at full size
    assert rows["CRAWLQA"][-3] == "0"  # every one-hop question is answered by the solver: too easy
    assert "uniqueness by search: dropped" in proc.stdout
