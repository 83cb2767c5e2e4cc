"""The breadth-first frontier on small link graphs: true hop counts, fixed order, page budget, and restore."""

from __future__ import annotations

from collections import deque

from wdtk.crawler.frontier import Frontier

# r -> a, b; a -> c, d; b -> c (again), e; c -> f; d -> r (back); e -> f (again); f -> g
GRAPH = {"r": ["a", "b"], "a": ["c", "d"], "b": ["c", "e"], "c": ["f"], "d": ["r"], "e": ["f"], "f": ["g"], "g": []}


def run(frontier: Frontier, graph: dict, finish=lambda url: True, window: int = 2, order=reversed) -> list[tuple]:
    """Drive the frontier as the spider does, completing each batch in `order`; returns (url, depth, parent)."""
    done = []
    while True:
        batch = frontier.take(window)
        if not batch:
            if not frontier.advance():
                return done
            continue
        for url, depth, parent in order(batch):  # responses come back in any order
            done.append((url, depth, parent))
            if finish(url):
                frontier.page(url, graph[url])
            else:
                frontier.other(url)


def hops(graph: dict, root: str) -> dict[str, int]:
    dist, queue = {root: 0}, deque([root])
    while queue:
        url = queue.popleft()
        for link in graph[url]:
            if link not in dist:
                dist[link] = dist[url] + 1
                queue.append(link)
    return dist


def test_depths_are_hop_counts_and_order_and_parents_do_not_depend_on_response_order():
    first = run(Frontier.restore(["r"], 10, 0, [], []), GRAPH, order=list)
    second = run(Frontier.restore(["r"], 10, 0, [], []), GRAPH, order=reversed, window=1)
    assert {u: d for u, d, _ in first} == hops(GRAPH, "r")
    assert sorted(first) == sorted(second)  # same depth and same parent for every URL
    assert dict((u, p) for u, _, p in first)["c"] == "a"  # the first page of the level, in level order, that links it


def test_max_depth_and_page_limit():
    assert {u for u, _, _ in run(Frontier.restore(["r"], 1, 0, [], []), GRAPH)} == {"r", "a", "b"}
    limited = Frontier.restore(["r"], 10, 4, [], [])
    fetched = run(limited, GRAPH, finish=lambda url: url != "a")  # "a" is a 404: it does not use up the budget
    assert limited.pages == 4 and limited.limit_reached
    assert sorted(u for u, _, _ in fetched) == ["a", "b", "c", "e", "r"]  # "d" only via "a"; "f" over budget
    assert not limited.exhausted or limited.queued == 0


def test_restore_after_a_kill_finds_the_rest_at_their_true_depths():
    full = {u: (d, p) for u, d, p in run(Frontier.restore(["r"], 10, 0, [], []), GRAPH)}
    # killed mid-level 2: "a" (depth 1) was fetched but its record was lost; "c" (depth 2) was written
    written = [{"url": u, "depth": full[u][0], "links": GRAPH[u]} for u in ("r", "b", "c")]
    frontier = Frontier.restore(["r"], 10, 0, written, done=[])
    assert frontier.level == 1 and list(frontier.queue) == [("a", "r")]
    rest = run(frontier, GRAPH)
    assert {u: d for u, d, _ in rest} == {u: full[u][0] for u in ("a", "d", "e", "f", "g")}
    assert frontier.exhausted and frontier.pages == len(GRAPH)
    assert not {u for u, _, _ in rest} & {"r", "b", "c"}  # nothing written is fetched again
