"""`wdtk report`: a run directory built here from hand-made records, rendered, and looked at in headless Chromium."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner

from wdtk import __version__
from wdtk.cli import main
from wdtk.report.gather import gather, histogram, render
from wdtk.schemas import record_id, write_records
from wdtk.synth.agent.format import TOOLS, Instructions

INJECTION = "<script>document.title='pwned'</script><img src=x onerror=\"document.body.dataset.pwned='1'\">"
HEADINGS = [
    "Run",
    "Funnel",
    "Drop reasons",
    "Data quality (ground truth)",
    "QA types",
    "E2HQA hops",
    "Actions and tokens",
    "Dedup clusters",
    "Judge vs exact match",
    "LLM usage",
    "Example kept trajectories",
]
BASE = "https://halvard.example"
STAMP = "2025-03-01T12:00:00Z"
META = {"model": "openai:qwen-7b", "prompt_version": "a1b2c3d4", "wdtk_version": __version__}


# --- records, made by hand --------------------------------------------------------------------


def page(i: int) -> dict:
    url = f"{BASE}/wiki/entity_{i}"
    return {
        "id": record_id("page", url),
        "url": url,
        "final_url": url,
        "status": 200,
        "title": f"Entity {i}",
        "text": f"Entity {i} was founded in {1800 + i} by the guild of Halvard.",
        "links": [f"{BASE}/wiki/entity_{i + 1}"],
        "depth": i % 3,
        "root": f"{BASE}/",
        "fetched_at": STAMP,
        "content_hash": f"{i:064x}",
        "meta": {"wdtk_version": __version__, "extractor": "trafilatura"},
    }


def qa(question: str, answer: str, qtype: str, source: str = "crawlqa", hops: int = 0) -> dict:
    record = {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": qtype,
        "source": source,
        "evidence_urls": [f"{BASE}/wiki/entity_1"],
        "meta": dict(META),
    }
    if source == "e2hqa":
        record["hops"] = [
            {
                "entity": f"entity {h}",
                "query": f"entity {h}",
                "evidence_urls": [f"{BASE}/wiki/entity_{h}"],
                "question_before": f"{question} (before hop {h})",
                "question_after": f"{question} (after hop {h})",
            }
            for h in range(hops)
        ]
    return record


def trajectory(q: dict, rollout: int, actions: int, tokens: int, termination: str, prediction: str | None) -> dict:
    messages = [
        {"role": "system", "content": Instructions().system_prompt()},
        {"role": "user", "content": q["question"]},
    ]
    for k in range(actions):
        name, args = (
            ("search", {"query": [q["question"][:40]]})
            if k % 2 == 0
            else ("visit", {"url": [q["evidence_urls"][0]], "goal": "find the year"})
        )
        call = {"type": "function", "id": f"call_{k}", "function": {"name": name, "arguments": args}}
        messages.append(
            {"role": "assistant", "content": "", "reasoning_content": f"Step {k}: look it up.", "tool_calls": [call]}
        )
        messages.append(
            {"role": "tool", "name": name, "tool_call_id": f"call_{k}", "content": f"Result {k}: {q['question']}"}
        )
    if prediction is not None:
        messages.append(
            {"role": "assistant", "content": f"<answer>{prediction}</answer>", "reasoning_content": "Done."}
        )
    record = {
        "id": record_id("trajectory", q["id"], rollout),
        "question_id": q["id"],
        "question": q["question"],
        "answer": q["answer"],
        "rollout": rollout,
        "messages": messages,
        "tools": TOOLS,
        "termination": termination,
        "stats": {"llm_calls": actions + 1, "actions": actions, "tokens": tokens},
        "meta": {**META, "parent_ids": [q["id"]], "temperature": 0.7},
    }
    if prediction is not None:
        record["prediction"] = prediction
    return record


def judgement(t: dict, correct: bool, exact: bool) -> dict:
    return {
        "id": record_id("judgement", t["id"]),
        "item_id": t["id"],
        "question": t["question"],
        "gold": t["answer"],
        "prediction": t.get("prediction", ""),
        "correct": correct,
        "method": "llm",
        "score": 1.0 if correct else 0.0,
        "exact_match": exact,
        "rationale": "same year" if correct else "different year",
        "judge": {"model": "openai:judge-14b", "prompt_version": "e5f6a7b8"},
        "meta": {"wdtk_version": __version__, "parent_ids": [t["id"]]},
    }


def usage(calls: int) -> dict:
    return {
        "calls": calls,
        "cache_hits": 1,
        "retries": 0,
        "errors": 0,
        "prompt_tokens": 900 * calls,
        "completion_tokens": 120 * calls,
        "cost": 0.0004 * calls,
    }


def stage_summary(name: str, items: int, kept: int, rejected: dict, calls: int) -> dict:
    return {
        "stage": name,
        "partitions": 1,
        "resumed_partitions": 0,
        "items": items,
        "kept": kept,
        "rejected": dict(rejected),
        "usage": {name: usage(calls)},
    }


# --- a run directory, and what it implies --------------------------------------------------------


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def build_run(run: Path) -> dict:
    """Write a small but complete run directory; return the numbers the report must show, computed from it."""
    pages = [page(i) for i in range(14)]
    write_records(pages, run / "crawl" / "pages", kind="page")
    skipped = {"duplicate_url": 5, "non_html": 2}
    crawl = {"pages": 14, "skipped": skipped, "errors": {"http_404": 1}, "links_not_followed": {"offsite": 7}}
    write_json(run / "crawl" / "crawl_summary.json", crawl)
    crawlqa, e2hqa, hops = write_synth(run)
    kept_qa, clusters = write_filter(run, crawlqa + e2hqa)
    trajectories = [sampled(q, n, k) for n, q in enumerate(kept_qa) for k in range(3)]
    write_records(trajectories, run / "sample" / "records", kind="trajectory")
    write_json(run / "sample" / "summary.json", stage_summary("sample", len(kept_qa), len(trajectories), {}, 40))
    steps, judged = write_funnel(run, trajectories, kept_qa)
    commands = [{"argv": ["wdtk", "demo", "--dir", str(run)], "started": STAMP, "wdtk_version": __version__}]
    (run / "commands.jsonl").write_text("".join(json.dumps(c) + "\n" for c in commands))
    counts = {"pages": len(pages), "crawlqa": len(crawlqa), "e2hqa": len(e2hqa), "filtered": len(kept_qa)}
    return {
        "steps": {**counts, "sampled": len(trajectories), **steps},
        "judge": Counter((ok, ex) for ok, ex in judged),
        "agreement": sum(ok == ex for ok, ex in judged) / len(judged),
        "clusters": clusters,
        "hops": Counter(hops),
        "types": Counter(q["type"] for q in kept_qa),
    }


def write_synth(run: Path) -> tuple[list[dict], list[dict], list[int]]:
    """CRAWLQA (one question carries the injection) and E2HQA records, rejects and summaries."""
    types = ["SIMPLE", "COUNT", "MULTI-HOP", "INTERSECTION", "SIMPLE", "COUNT", "SIMPLE"]
    crawlqa = [qa(f"In which year was Entity {i} founded?", str(1800 + i), t) for i, t in enumerate(types)]
    crawlqa[0] = qa("Which guild founded " + INJECTION + "?", "1800", "SIMPLE")
    hops = [1, 2, 2, 3, 1]
    e2hqa = [
        qa(
            f"Which body, founded by a guild of river {i}, dates from which year?",
            str(1900 + i),
            "MULTI-HOP",
            "e2hqa",
            n,
        )
        for i, n in enumerate(hops)
    ]
    reasons = {
        "crawlqa": ["unparseable", "unsupported", "unsupported"],
        "e2hqa": ["check_failed", "no_search_results"],
    }
    for name, records, calls in (("crawlqa", crawlqa, 6), ("e2hqa", e2hqa, 9)):
        rejects = [{"stage": name, "reason": r, "round": 1} for r in reasons[name]]
        write_records(records, run / "synth" / name / "records", kind="qa")
        write_records(rejects, run / "synth" / name / "rejects")
        summary = stage_summary(name, len(records) + 2, len(records), Counter(reasons[name]), calls)
        write_json(run / "synth" / name / "summary.json", summary)
    return crawlqa, e2hqa, hops


def write_filter(run: Path, candidates: list[dict]) -> tuple[list[dict], int]:
    """Filter output: one quality drop and two clusters of near-duplicates (of 3 and of 2 questions)."""
    duplicates = {
        candidates[1]["id"]: ["In what year was Entity 1 founded?", "In which year was Entity 1 founded ?"],
        candidates[0]["id"]: ["Which guild founded " + INJECTION + " ?"],
    }
    kept = candidates[:-1]
    rejects = [{"stage": "filter", "reason": "answer_in_question", "record": candidates[-1]}]
    for kept_id, questions in duplicates.items():
        for text in questions:
            record = qa(text, "1801", "SIMPLE")
            rejects.append({"stage": "filter", "reason": "duplicate_near", "duplicate_of": kept_id, "record": record})
    write_records(kept, run / "filter" / "records", kind="qa")
    write_records(rejects, run / "filter" / "rejects")
    dropped = Counter(r["reason"] for r in rejects)
    write_json(
        run / "filter" / "summary.json",
        {"stage": "filter", "in": len(candidates) + 3, "kept": len(kept), "dropped": dropped},
    )
    return kept, len(duplicates)


def sampled(q: dict, n: int, k: int) -> dict:
    """Rollout k of question n: a mix of action counts, endings and right and wrong answers."""
    actions = (n + 2 * k) % 7
    termination = "call_budget_exceeded" if actions == 6 else "format_error" if (n + k) % 5 == 4 else "answer"
    prediction = (q["answer"] if (n + k) % 4 else "1066") if termination == "answer" else None
    return trajectory(q, k, actions, 800 + 350 * actions + 37 * n, termination, prediction)


def write_funnel(run: Path, trajectories: list[dict], questions: list[dict]) -> tuple[dict, list[tuple[bool, bool]]]:
    """The funnel's outputs as `wdtk funnel` writes them; returns its step counts and (judge, exact) pairs."""
    valid = [t for t in trajectories if t["termination"] == "answer"]
    # the judge accepts some wrong answers (rollout 2) and rejects some right ones (rollout 1 with 3 actions)
    verdicts = {}
    for t in valid:
        exact = t["prediction"] == t["answer"]
        verdicts[t["id"]] = (
            (exact or t["rollout"] == 2) and not (t["rollout"] == 1 and t["stats"]["actions"] == 3),
            exact,
        )
    correct = [t for t in valid if verdicts[t["id"]][0]]
    kept = [t for t in correct if t["stats"]["actions"] > 0]
    kept.sort(key=lambda t: INJECTION not in t["question"])  # the injected question among the examples shown
    rejects = (
        [{"stage": "validity", "reason": t["termination"], "record": t} for t in trajectories if t not in valid]
        + [{"stage": "correctness", "reason": "incorrect", "record": t} for t in valid if t not in correct]
        + [{"stage": "quality", "reason": "no_actions", "record": t} for t in correct if t not in kept]
    )
    write_records(kept, run / "funnel" / "records", kind="trajectory")
    write_records(rejects, run / "funnel" / "rejects")
    judgements = [judgement(t, *verdicts[t["id"]]) for t in valid]
    write_records(judgements, run / "funnel" / "judgements", kind="judgement")
    kept_questions = {t["question_id"] for t in kept}
    pool = [
        {"id": q["id"], "question": q["question"], "answer": q["answer"], "metadata": {}}
        for q in questions
        if q["id"] not in kept_questions
    ]
    write_records(pool, run / "funnel" / "rl_pool")

    def stage(name: str, before: list, after: list) -> dict:
        dropped = Counter(r["reason"] for r in rejects if r["stage"] == name)
        return {"name": name, "in": len(before), "kept": len(after), "dropped": dropped}

    agree = sum(ok == ex for ok, ex in verdicts.values())
    summary = {
        "stage": "funnel",
        "trajectories": len(trajectories),
        "questions": len(questions),
        "stages": [
            stage("validity", trajectories, valid),
            stage("correctness", valid, correct),
            stage("quality", correct, kept),
        ],
        "kept": len(kept),
        "questions_kept": len(kept_questions),
        "rl_pool": len(pool),
        "judge": {"method": "llm", "model": "openai:judge-14b", "prompt_version": "e5f6a7b8"},
        "judge_agreement": {"judged": len(verdicts), "agree_with_exact": agree},
    }
    write_json(run / "funnel" / "summary.json", summary)
    steps = {"valid": len(valid), "correct": len(correct), "kept": len(kept), "questions": len(questions)}
    steps |= {"questions_kept": len(kept_questions), "rl_pool": len(pool)}
    return steps, list(verdicts.values())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(run directory, the numbers it implies), built once for this module."""
    run = tmp_path_factory.mktemp("report") / "run"
    return run, build_run(run)


def invoke(*args: str):
    return CliRunner().invoke(main, ["report", *args])


# --- headless Chromium ----------------------------------------------------------------------------

CHROMIUM = next(
    (
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if shutil.which(name)
    ),
    None,
)
WINDOW = (1280, 4000)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium once with its own profile; --no-sandbox because CI runs as root."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def page_requests(netlog: Path) -> list[str]:
    """http(s) URLs a file:// page asked for, from a Chromium net log.

    Chromium's own requests (update and time checks) are in the log too; a page's carry its opaque file origin
    ("null") as initiator and file:// in their network isolation key.
    """
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        from_page = params.get("initiator") == "null" or "file://" in params.get("network_isolation_key", "")
        if event["type"] == start and from_page and params.get("url", "").startswith(("http:", "https:")):
            urls.append(params["url"])
    return urls


def png_facts(path: Path) -> tuple[int, int, float]:
    """(width, height, share of non-zero bytes in the filtered pixel stream): a blank page's is near 0."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, i = b"", 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        if data[i + 4 : i + 8] == b"IDAT":
            idat += data[i + 8 : i + 8 + n]
        i += 12 + n
    raw = zlib.decompress(idat)
    return width, height, 1 - raw.count(0) / len(raw)


def test_chromium_renders_the_report_safely_and_offline(run_dir, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (scripts/test.sh installs it with apt-get when run as root)")
    run, expected = run_dir
    out = tmp_path / "report.html"
    result = invoke(str(run), "-o", str(out))
    assert result.exit_code == 0, result.output
    netlog = tmp_path / "net.json"
    dom = chromium(tmp_path / "p1", f"--log-net-log={netlog}", "--dump-dom", out.as_uri()).stdout
    doc = lxml.html.fromstring(dom)

    assert [h.text_content() for h in doc.xpath("//h2")] == HEADINGS
    for key, count in expected["steps"].items():
        (step,) = doc.xpath(f'//*[@data-step="{key}"]')
        assert step.get("data-count") == str(count)
        assert f"{count:,}" in step.text_content()
    cells = [int(td.text_content()) for td in doc.xpath('//table[@class="m22"]//td')]
    judge = expected["judge"]
    assert cells == [judge[True, True], judge[True, False], judge[False, True], judge[False, False]]
    assert doc.get_element_by_id("agreement").text_content() == f"{100 * expected['agreement']:.1f}%"
    types = {tr[0].text_content(): int(tr[-1].text_content()) for tr in doc.xpath('//section[@id="types"]//tr[td]')}
    assert types == expected["types"]
    hops = {int(tr[0].text_content()): int(tr[1].text_content()) for tr in doc.xpath('//section[@id="hops"]//tr[td]')}
    assert hops == expected["hops"]
    assert doc.xpath('//section[@id="dedup"]//span[@class="big"]')[0].text_content() == str(expected["clusters"])

    # the injected question is shown as text, and nothing of it runs
    assert INJECTION in doc.body.text_content()
    assert not doc.xpath("//script | //img | //iframe | //object | //embed | //link | //base | //*[@onerror]")
    assert doc.body.get("data-pwned") is None and doc.findtext(".//title") != "pwned"

    # nothing external: only in-page links, no CSS that fetches, and Chromium logged no request from the page
    for element in doc.iter():
        for name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
            assert element.get(name) is None or element.get(name).startswith("#"), (element.tag, element.get(name))
    style = "".join(doc.xpath("//style/text()"))
    assert "url(" not in style and "@import" not in style
    assert page_requests(netlog) == []
    # ...and the net log check does see a page's request: a control page asks a closed local port for an image
    control = tmp_path / "control.html"
    control.write_text('<!doctype html><img src="http://127.0.0.1:9/x.png">')
    chromium(tmp_path / "p2", f"--log-net-log={tmp_path / 'control.json'}", "--dump-dom", control.as_uri())
    assert page_requests(tmp_path / "control.json") == ["http://127.0.0.1:9/x.png"]

    # the screenshot: the full window, far busier than the near-blank control page at the same size
    shots = {}
    for name, page in (("report", out), ("control", control)):
        shots[name] = tmp_path / f"{name}.png"
        size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
        chromium(tmp_path / f"s-{name}", f"--screenshot={shots[name]}", size, page.as_uri())
    width, height, busy = png_facts(shots["report"])
    assert (width, height) == WINDOW
    assert shots["report"].stat().st_size > 10 * shots["control"].stat().st_size
    assert busy > 5 * png_facts(shots["control"])[2]
    try:
        from PIL import Image
    except ImportError:
        return
    pixels = Image.open(shots["report"]).convert("RGB").resize((320, 1000))
    assert len(set(pixels.getdata())) > 50  # text, bars and cards, not one flat colour


# --- figures, without a browser -------------------------------------------------------------------


def test_gather_counts_what_the_run_directory_holds(run_dir):
    run, expected = run_dir
    figures = gather(run)
    assert {s["key"]: s["count"] for s in figures["steps"]} == expected["steps"]
    page = render(json.loads(json.dumps(figures)))  # figures are plain JSON data, and enough to render from
    assert page.startswith("<!DOCTYPE html>") and all(s["label"] in page for s in figures["steps"])
    judge = figures["judge"]
    assert judge["compared"] == sum(expected["judge"].values())
    assert judge["agreement"] == round(expected["agreement"], 4)
    assert all(d["correct"] != d["exact_match"] for d in judge["disagreements"])
    dedup = figures["filter"]["dedup"]
    assert dedup["clusters"] == expected["clusters"]
    assert sorted(ex["size"] for ex in dedup["examples"]) == [2, 3]
    assert all(ex["kept"] for ex in dedup["examples"])  # the kept question was found in filter/records
    assert len({ex["question_id"] for ex in figures["examples"]}) == len(figures["examples"]) > 1
    drops = {d["stage"]: d["reasons"] for d in figures["drops"]}
    assert drops["Crawl: skipped or failed"] == {"duplicate_url": 5, "non_html": 2, "http_404": 1}
    assert sum(drops["Funnel: validity"].values()) == expected["steps"]["sampled"] - expected["steps"]["valid"]
    assert sum(r["calls"] for r in figures["usage"]) == 6 + 9 + 40
    judged = sum(expected["judge"].values())  # one per judgement record, plus the funnel summary's judge
    assert figures["provenance"]["judge"]["model"] == {"openai:judge-14b": judged + 1}


def test_stages_not_run_are_shown_as_such(run_dir, tmp_path):
    run, expected = run_dir
    partial = tmp_path / "partial"
    for stage in ("crawl", "synth"):
        shutil.copytree(run / stage, partial / stage)
    result = invoke(str(partial))
    assert result.exit_code == 0, result.output
    page = (partial / "report.html").read_text()
    doc = lxml.html.fromstring(page)
    assert doc.xpath('//*[@data-step="crawlqa"]')[0].get("data-count") == str(expected["steps"]["crawlqa"])
    for key in ("filtered", "sampled", "valid", "kept", "rl_pool"):
        (step,) = doc.xpath(f'//*[@data-step="{key}"]')
        assert step.get("data-count") == "" and "not run" in step.text_content()
    for section in ("dedup", "judge", "examples", "trajectories"):
        assert "not run" in doc.get_element_by_id(section).text_content()


def test_cli_errors_are_one_clear_line(tmp_path):
    result = invoke(str(tmp_path / "missing"))
    assert result.exit_code == 1 and "no run directory at" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke(str(tmp_path / "empty"))
    assert result.exit_code == 1 and "nothing to report" in result.output
    broken = tmp_path / "broken" / "sample" / "records"
    broken.mkdir(parents=True)
    (broken / "00000.jsonl").write_text('{"id": "a"}\n{not json\n')
    result = invoke(str(tmp_path / "broken"))
    assert result.exit_code == 1 and "00000.jsonl:2" in result.output and "Traceback" not in result.output


def test_histogram_bins_every_value_once():
    values = Counter({v: 1 + v % 3 for v in range(0, 4000, 7)})
    hist = histogram(values)
    flat = sorted(v for v, c in values.items() for _ in range(c))
    assert hist["n"] == len(flat) == sum(b["count"] for b in hist["bins"])
    assert hist["median"] == flat[(len(flat) - 1) // 2] and hist["max"] == flat[-1]
    assert len(hist["bins"]) <= 15 and all(
        b["hi"] - b["lo"] + 1 in (1, 2, 5, 10, 20, 50, 100, 200, 500) for b in hist["bins"]
    )
    for b in hist["bins"]:
        assert b["count"] == sum(c for v, c in values.items() if b["lo"] <= v <= b["hi"])
    small = histogram(Counter({0: 2, 3: 1}))
    assert [b["label"] for b in small["bins"]] == ["0", "1", "2", "3"]


def test_a_missing_funnel_summary_is_rebuilt_from_the_rejects(run_dir, tmp_path):
    run, expected = run_dir
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "funnel" / "summary.json").unlink()
    figures = gather(copy)
    steps = {s["key"]: s["count"] for s in figures["steps"]}
    assert {k: steps[k] for k in ("valid", "correct", "kept", "questions_kept", "rl_pool")} == {
        k: expected["steps"][k] for k in ("valid", "correct", "kept", "questions_kept", "rl_pool")
    }
    assert figures["warnings"] == [
        "funnel/summary.json is missing: the funnel's counts are rebuilt from funnel/rejects"
    ]
