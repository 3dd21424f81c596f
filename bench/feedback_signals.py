"""Why feedback orders a reader's papers only a little better: how well each signal tells the
relevant papers from the rest among the papers a reader's topics and free text already let in.

    .venv/bin/python bench/feedback_signals.py

The week of bench/ranking_eval.py is replayed with the shipped ranking, learning from feedback,
over the same seeds. From day 4 on, for every reader with both liked and disliked papers and a
day with relevant and irrelevant candidates, each signal's AUC is measured over the
candidates (papers whose topic + free-text relevance clears the threshold at focus 0): the
chance that a relevant candidate scores above an irrelevant one (0.5: no better than chance).
Figures go to bench/results/feedback_signals.json and .md.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench import ranking_eval as E  # noqa: E402  (sets up Django)
from newsletter import ranking  # noqa: E402

FIRST_DAY = 4


def auc(scores: np.ndarray, relevant: np.ndarray) -> float:
    pos, neg = scores[relevant], scores[~relevant]
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def signals(the_day, reader, feedback) -> dict[str, np.ndarray]:
    topic, _ = ranking._topic_term(the_day, ranking._topic_columns([reader], the_day))
    text = ranking._above_baseline(reader.interest @ the_day.vectors.T, the_day.baseline)
    liked, _, _ = ranking._nearest([reader], "liked", feedback)
    disliked, _, _ = ranking._nearest([reader], "disliked", feedback)
    base = ranking.TOPIC * topic[0] + ranking.TEXT * text
    full = ranking._scores(
        the_day, [reader], feedback, ranking._masks([reader], the_day, ranking._Matcher(the_day))
    ).score[0]
    return {
        "topic": topic[0],
        "free text": text,
        "closest liked": liked[0],
        "closest disliked (negated)": -disliked[0],
        "closest liked - closest disliked": liked[0] - disliked[0],
        "topics + text (no feedback)": base,
        "shipped relevance (with feedback)": full,
    }


def replay(world: E.World, seed: int, found: dict[str, list[float]]) -> None:
    rng = random.Random(seed)
    given = {r.id: ([], []) for r in world.readers}
    for day_number, papers in enumerate(E.split_days(world.papers, seed), start=1):
        the_day = world.day_matrices(papers)
        feedback = ranking.FeedbackPapers.build(the_day, world.vectors, {}, world.tags)
        for sim in world.readers:
            liked, disliked = given[sim.id]
            reader = ranking.Reader(
                sim.id,
                topics=sim.topics,
                interest=world.interest[sim.id],
                liked=tuple(reversed(liked)),
                disliked=tuple(reversed(disliked)),
                limit=E.LIMIT,
                focus=0.0,
            )
            relevant_ids = world.relevant(sim, papers)
            if day_number >= FIRST_DAY and liked and disliked:
                values = signals(the_day, reader, feedback)
                relevant = np.array([p.id in relevant_ids for p in papers])
                candidate = values["topics + text (no feedback)"] >= ranking.THRESHOLD
                found.setdefault("_relevant", []).append(int(relevant.sum()))
                found.setdefault("_relevant candidates", []).append(int(relevant[candidate].sum()))
                found.setdefault("_candidates", []).append(int(candidate.sum()))
                if relevant[candidate].any() and (~relevant[candidate]).any():
                    for name, v in values.items():
                        found.setdefault(name, []).append(auc(v[candidate], relevant[candidate]))
            shown = ranking.rank_readers(the_day, [reader], feedback)[0]
            for pid, _ in shown:
                if rng.random() < E.FEEDBACK_RATE:
                    (liked if pid in relevant_ids else disliked).append(pid)


def main() -> None:
    world = E.World()
    found: dict[str, list[float]] = {}
    for seed in E.SEEDS:
        replay(world, seed, found)
    counts = {name: sum(found.pop(name)) for name in list(found) if name.startswith("_")}
    result = {
        "seeds": E.SEEDS,
        "reader_days": len(found["topic"]),
        "auc": {name: float(np.mean(v)) for name, v in found.items()},
        "relevant_papers": counts["_relevant"],
        "relevant_papers_among_candidates": counts["_relevant candidates"],
        "candidates": counts["_candidates"],
    }
    E.RESULTS.mkdir(exist_ok=True)
    (E.RESULTS / "feedback_signals.json").write_text(json.dumps(result, indent=1))
    rows = "\n".join(f"| {name} | {value:.2f} |" for name, value in result["auc"].items())
    text = (
        f"AUC among the candidates, mean over {result['reader_days']} reader-days (day "
        f"{FIRST_DAY} on, readers with likes and dislikes), seeds {E.SEEDS}.\n\n"
        "| signal | AUC |\n|---|---|\n" + rows + "\n\n"
        f"Over all reader-days from day {FIRST_DAY} of readers with likes and dislikes: "
        f"{result['candidates']} candidates, "
        f"{result['relevant_papers']} relevant papers, of which "
        f"{result['relevant_papers_among_candidates']} are candidates.\n"
    )
    (E.RESULTS / "feedback_signals.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
