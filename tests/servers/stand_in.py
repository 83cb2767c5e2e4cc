"""A scripted stand-in for a capable model, for running the whole path offline: an OpenAI-compatible server (the
fake one in openai_server.py) whose replies come from a generated site's ground truth.

    python tests/servers/stand_in.py runs/path/site --port 8001    # prints its base URL, serves until killed

Synthesis prompts are answered like a careful model (TruthModel), agent turns search, visit and answer the questions
the truth can answer (AgentModel, plan "good"), so records reach every stage, SFT and RL included. The data says
nothing about any real model: it only shows the commands at work.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path


def responder(site_dir: Path):
    """The reply function for the fake server: agent turns, visit extraction and judging first, then synthesis."""
    from servers.agent_model import AgentModel
    from servers.truth_model import TruthModel
    from wdtk.crawler.sitegen import load_truth
    from wdtk.crawler.sitegen.seeds import simple_seeds

    truth = load_truth(site_dir)
    names = {e["id"]: e["name"] for e in truth["entities"]}
    answers = {s["problem"]: s["answer"] for s in simple_seeds(site_dir, 10_000)}
    for f in truth["facts"]:
        if f["object_type"] == "entity":
            answers[f"Regarding {names[f['subject']]}: what is its {f['relation']}?"] = f["object_text"]
    agent, synth = AgentModel(answers), TruthModel(truth)
    return lambda body: r if (r := agent(body)) != "I do not understand" else synth(body)


def main() -> None:
    """Serve until killed; print the base URL first."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `servers` is tests/servers
    from servers.openai_server import FakeOpenAIServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="a site built by `wdtk site build` (its _truth/ is read)")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    server = FakeOpenAIServer(responder(args.site), port=args.port).start()
    print(server.base_url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
