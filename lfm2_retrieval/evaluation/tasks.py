"""Retrieval tasks (corpus, queries, relevance judgements) and the layouts they come in.

    BEIR folder:          corpus.jsonl (_id, title, text), queries.jsonl (_id, text),
                          qrels/<split>.tsv (query-id, corpus-id, score; header row)
    Hugging Face parquet: corpus (_id, text), queries (_id, text), qrels (query-id, corpus-id),
                          as files or folders named corpus*/queries*/qrels* (NanoBEIR's layout)
    Hub datasets:         zeta-alpha-ai/Nano{Task}, sentence-transformers/NanoBEIR-en,
                          LiquidAI/nanobeir-multilingual-extended (configs such as NanoArguAna_ar)

Tasks built by this project (eval/nanobeir.py --build) are BEIR folders with a `task.json`
naming the task, its languages, source and license. Relevance is binary, as in NanoBEIR.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

TASK_FILE = "task.json"


@dataclass
class TaskInfo:
    name: str  # e.g. NanoSciFact, NanoQA, NanoNTREX
    language: str  # ISO 639-1 code of queries and documents
    source: str = ""
    license: str = ""
    parallel: bool = False  # ids align across languages: usable for cross-lingual grids
    extra: dict = field(default_factory=dict)


@dataclass
class RetrievalTask:
    info: TaskInfo
    corpus: dict[str, str]  # document id -> text (title and body joined)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> {document id: 1}

    @property
    def key(self) -> str:
        return f"{self.info.name}_{self.info.language}"

    def check(self) -> None:
        """Every judged query exists, every judged document is in the corpus."""
        missing_q = [q for q in self.qrels if q not in self.queries]
        missing_d = [d for rel in self.qrels.values() for d in rel if d not in self.corpus]
        if missing_q or missing_d:
            raise ValueError(f"{self.key}: qrels name {len(missing_q)} unknown queries and "
                             f"{len(missing_d)} unknown documents")
        self.queries = {q: t for q, t in self.queries.items() if q in self.qrels}


def _join(title: str | None, text: str | None) -> str:
    title, text = (title or "").strip(), (text or "").strip()
    return f"{title}\n{text}" if title and text else title or text


# ---------------------------------------------------------------------- BEIR
def save_beir(task: RetrievalTask, folder: Path, split: str = "test") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, text in task.corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in task.queries.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["query-id", "corpus-id", "score"])
        for qid, rel in task.qrels.items():
            for doc_id, score in rel.items():
                w.writerow([qid, doc_id, score])
    (folder / TASK_FILE).write_text(json.dumps(asdict(task.info), indent=2, ensure_ascii=False), encoding="utf-8")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_beir(folder: Path, split: str = "test", info: TaskInfo | None = None) -> RetrievalTask:
    folder = Path(folder)
    corpus = {str(d["_id"]): _join(d.get("title"), d.get("text")) for d in _read_jsonl(folder / "corpus.jsonl")}
    queries = {str(q["_id"]): q["text"] for q in _read_jsonl(folder / "queries.jsonl")}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise FileNotFoundError(f"{folder}: no qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0] == "query-id":
                continue
            score = int(float(row[2])) if len(row) > 2 else 1
            if score > 0:
                qrels.setdefault(row[0], {})[row[1]] = 1
    info = info or _read_info(folder)
    task = RetrievalTask(info, corpus, queries, qrels)
    task.check()
    return task


def _read_info(folder: Path) -> TaskInfo:
    path = folder / TASK_FILE
    if path.exists():
        return TaskInfo(**json.loads(path.read_text(encoding="utf-8")))
    return TaskInfo(name=folder.name, language="en")


# ---------------------------------------------------------------------- parquet
def _parquet_rows(paths: list[Path]) -> list[dict]:
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for p in sorted(paths):
        rows.extend(pq.read_table(p).to_pylist())
    return rows


def _find(folder: Path, kind: str) -> list[Path]:
    return [p for p in folder.rglob("*.parquet") if any(part.startswith(kind) for part in p.relative_to(folder).parts)]


def load_hf_parquet(folder: Path, info: TaskInfo | None = None) -> RetrievalTask:
    """A task in Hugging Face's parquet layout (corpus/queries/qrels)."""
    folder = Path(folder)
    parts = {kind: _find(folder, kind) for kind in ("corpus", "queries", "qrels")}
    if not all(parts.values()):
        raise FileNotFoundError(f"{folder}: expected parquet files for corpus, queries and qrels, found "
                                + ", ".join(f"{k}: {len(v)}" for k, v in parts.items()))
    corpus = {str(r["_id"]): _join(r.get("title"), r.get("text")) for r in _parquet_rows(parts["corpus"])}
    queries = {str(r["_id"]): r["text"] for r in _parquet_rows(parts["queries"])}
    qrels: dict[str, dict[str, int]] = {}
    for r in _parquet_rows(parts["qrels"]):
        if float(r.get("score", 1) or 0) > 0:
            qrels.setdefault(str(r["query-id"]), {})[str(r["corpus-id"])] = 1
    task = RetrievalTask(info or _read_info(folder), corpus, queries, qrels)
    task.check()
    return task


def load_folder(folder: Path) -> RetrievalTask:
    """A task folder in either layout."""
    folder = Path(folder)
    if (folder / "corpus.jsonl").exists():
        return load_beir(folder)
    return load_hf_parquet(folder)


def discover(data_dir: Path) -> list[Path]:
    """Task folders under `data_dir` (any depth), in name order."""
    found = {p.parent for p in Path(data_dir).rglob("corpus.jsonl")}
    found |= {p.parent for p in Path(data_dir).rglob("*.parquet") if p.parent.name.startswith("corpus")}
    found = {p.parent if p.name.startswith("corpus") else p for p in found}
    return sorted(found)


# ---------------------------------------------------------------------- the hub
NANOBEIR_TASKS = ["ArguAna", "ClimateFEVER", "DBPedia", "FEVER", "FiQA2018", "HotpotQA", "MSMARCO", "NFCorpus",
                  "NQ", "QuoraRetrieval", "SCIDOCS", "SciFact", "Touche2020"]
MULTILINGUAL_REPO = "LiquidAI/nanobeir-multilingual-extended"


class DataUnavailableError(RuntimeError):
    pass


def load_hub(task: str, language: str = "en") -> RetrievalTask:
    """An official NanoBEIR task from the Hugging Face hub (needs internet, or a filled cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    name = task if task.startswith("Nano") else f"Nano{task}"
    repo, pattern = (f"zeta-alpha-ai/{name}", None) if language == "en" else (MULTILINGUAL_REPO, f"*{name}_{language}*")
    try:
        folder = Path(snapshot_download(repo, repo_type="dataset", allow_patterns=pattern))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise DataUnavailableError(
            f"cannot fetch {repo} ({type(exc).__name__}); offline, download it elsewhere "
            f"(huggingface-cli download {repo} --repo-type dataset --local-dir DIR) and pass --data DIR, "
            "or build local tasks with --build"
        ) from None
    if pattern:
        matches = [p for p in folder.rglob("*") if p.is_dir() and p.name == f"{name}_{language}"]
        folder = matches[0] if matches else folder
    return load_hf_parquet(folder, TaskInfo(name=name, language=language, source=repo))
