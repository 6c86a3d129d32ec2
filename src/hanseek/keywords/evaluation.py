"""Blank quality against human-marked key words: the `**bold**` terms of study notes.

Protocol (leave one note out; nothing is tuned on the notes — every parameter is the default):
- Each note is split into its Markdown sections, and sections are packed into pages of at most
  `page_chars` characters (a photographed page is about that much text). The `**` markers are
  stripped; what they covered is remembered.
- A candidate is an occurrence of a term the cloze may blank (noun, noun compound, foreign word).
  It is *gold* when it lies inside a bold span.
- For the held-out note, the subject corpus is the pages of all OTHER notes, the dictionary gives
  each word the share of its occurrences the student bolded in the other notes, and the keyword
  list (floor) is every word bolded at least once in the other notes.
- Blanks, two views:
  * occurrences: the cloze with duplicates allowed blanks the note's bold ratio (gold candidates /
    candidates) of each page's candidates; precision/recall over blanked vs bold occurrences.
  * words: the cloze without duplicates blanks the note's bold word ratio (bold words / candidate
    words) of each page's distinct candidate words; precision/recall over distinct words per page.
  Counts are summed over pages and notes (micro average).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.keywords.background import BackgroundCorpus
from hanseek.keywords.cloze import ClozeOptions, make_cloze
from hanseek.keywords.corpus import MemoryCorpus
from hanseek.keywords.markdown import markdown_to_text, split_sections
from hanseek.keywords.scoring import Method, ScoringParams, score_page
from hanseek.keywords.service import DEFAULT_FLOOR
from hanseek.keywords.terms import TermExtractor, TermOccurrence


@dataclass(frozen=True)
class EvalMethod:
    name: str
    params: ScoringParams
    floor: bool = False


DEFAULT_METHODS: tuple[EvalMethod, ...] = (
    EvalMethod("tf (baseline)", ScoringParams(method=Method.TF)),
    EvalMethod("dictionary", ScoringParams(method=Method.DICTIONARY)),
    EvalMethod("tfidf", ScoringParams(method=Method.TFIDF)),
    EvalMethod("bm25", ScoringParams(method=Method.BM25)),
    EvalMethod("bm25 (no length norm)", ScoringParams(method=Method.BM25, length_norm=False)),
    EvalMethod("bm25 + floor", ScoringParams(method=Method.BM25, floor=DEFAULT_FLOOR), floor=True),
    EvalMethod("combined", ScoringParams(method=Method.COMBINED)),
    EvalMethod("combined + floor", ScoringParams(method=Method.COMBINED, floor=DEFAULT_FLOOR), floor=True),
)
CLOZE = ClozeOptions()  # default eligibility: nouns, compounds, foreign words


@dataclass
class Page:
    text: str
    occs: list[TermOccurrence]
    gold: list[bool]  # per occurrence: inside a bold span

    def candidates(self) -> list[int]:
        return [i for i, o in enumerate(self.occs) if o.is_noun or o.is_foreign]


@dataclass
class Note:
    name: str
    pages: list[Page]

    def candidate_counts(self) -> tuple[int, int, int, int]:
        """(candidates, gold candidates, candidate words, gold words), words counted per page."""
        c = g = cw = gw = 0
        for p in self.pages:
            idx = p.candidates()
            c += len(idx)
            g += sum(p.gold[i] for i in idx)
            cw += len({p.occs[i].term for i in idx})
            gw += len({p.occs[i].term for i in idx if p.gold[i]})
        return c, g, cw, gw


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def as_dict(self) -> dict[str, float | int]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def bootstrap(
    pages: Sequence[Counts], baseline: Sequence[Counts], *, resamples: int = 2000, seed: int = 0
) -> dict[str, list[float]]:
    """95% intervals (page bootstrap, fixed seed) of the micro F1 and of its difference with the
    baseline method on the same resampled pages."""
    rng = np.random.default_rng(seed)
    a = np.array([(c.tp, c.fp, c.fn) for c in pages], dtype=np.int64)
    b = np.array([(c.tp, c.fp, c.fn) for c in baseline], dtype=np.int64)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    sa, sb = a[idx].sum(axis=1), b[idx].sum(axis=1)
    fa = 2 * sa[:, 0] / np.maximum(2 * sa[:, 0] + sa[:, 1] + sa[:, 2], 1)
    fb = 2 * sb[:, 0] / np.maximum(2 * sb[:, 0] + sb[:, 1] + sb[:, 2], 1)

    def ci(x: np.ndarray) -> list[float]:
        return [round(float(np.percentile(x, 2.5)), 4), round(float(np.percentile(x, 97.5)), 4)]

    return {"f1_ci95": ci(fa), "f1_minus_baseline_ci95": ci(fa - fb)}


def _inside(o: TermOccurrence, spans: Sequence[tuple[int, int]]) -> bool:
    return any(s <= o.start and o.end <= e for s, e in spans)


def load_note(path: Path, extractor: TermExtractor, *, page_chars: int = 2000) -> Note:
    md = path.read_text(encoding="utf-8")
    pieces = [markdown_to_text(sec, keep_bold=True) for sec in split_sections(md)]
    pieces = [p for p in pieces if p.text.strip()]
    # Pack consecutive sections into pages of at most page_chars (a long section is its own page).
    groups: list[list[Any]] = []
    size = 0
    for p in pieces:
        if groups and size + len(p.text) + 2 <= page_chars:
            groups[-1].append(p)
            size += len(p.text) + 2
        else:
            groups.append([p])
            size = len(p.text)
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    for group in groups:
        parts: list[str] = []
        bold: list[tuple[int, int]] = []
        offset = 0
        for p in group:
            bold.extend((s + offset, e + offset) for s, e in p.bold)
            parts.append(p.text)
            offset += len(p.text) + 2
        texts.append("\n\n".join(parts))
        spans.append(bold)
    pages = []
    for text, bold, occs in zip(texts, spans, extractor.extract_batch(texts), strict=True):
        pages.append(Page(text, occs, [_inside(o, bold) for o in occs]))
    return Note(path.stem, pages)


def subject_of(note_name: str) -> str:
    """`2016_05_Science` -> `Science` (the notes are named year_month_subject)."""
    return note_name.split("_", 2)[-1]


def note_paths(folder: Path) -> list[Path]:
    """The study notes in a folder: Markdown files other than README/SOURCE."""
    return sorted(p for p in folder.glob("*.md") if p.stem.upper() not in {"README", "SOURCE", "LICENSE"})


def leave_one_out_corpus(others: Sequence[Note]) -> MemoryCorpus:
    """Subject corpus, dictionary and keyword list built from the other notes only."""
    seen: Counter[str] = Counter()
    bolded: Counter[str] = Counter()
    corpus_docs: list[list[str]] = []
    for note in others:
        for page in note.pages:
            corpus_docs.append([o.term for o in page.occs])
            for o, g in zip(page.occs, page.gold, strict=True):
                seen[o.term] += 1
                bolded[o.term] += g
    dictionary = {t: bolded[t] / (seen[t] + 1) for t in bolded if bolded[t] > 0}
    corpus = MemoryCorpus(dictionary=dictionary, keywords=[t for t in bolded if bolded[t] > 0])
    for doc in corpus_docs:
        corpus.add(doc)
    return corpus


def _score_page(page: Page, corpus: MemoryCorpus, background: BackgroundCorpus, m: EvalMethod) -> list[Any]:
    ctx = corpus.context(o.term for o in page.occs)
    params = m.params
    return score_page(
        page.occs,
        params,
        subject=ctx.stats,
        background=background.stats,
        dictionary=ctx.dictionary,
        floor_words=ctx.keywords if m.floor else frozenset(),
    )


def evaluate(
    notes: Sequence[Note],
    background: BackgroundCorpus,
    methods: Sequence[EvalMethod] = DEFAULT_METHODS,
    *,
    same_subject: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Leave-one-out evaluation. With `same_subject`, the corpus, dictionary and keyword list of a
    held-out note come only from the other notes of its subject (notes without one are skipped)."""
    per_method_occ = {m.name: Counts() for m in methods}
    per_method_word = {m.name: Counts() for m in methods}
    pages_occ: dict[str, list[Counts]] = {m.name: [] for m in methods}
    pages_word: dict[str, list[Counts]] = {m.name: [] for m in methods}
    per_note: list[dict[str, Any]] = []
    for i, note in enumerate(notes):
        others = [n for j, n in enumerate(notes) if j != i]
        if same_subject:
            others = [n for n in others if subject_of(n.name) == subject_of(note.name)]
            if not others:
                continue
        corpus = leave_one_out_corpus(others)
        c, g, cw, gw = note.candidate_counts()
        occ_ratio = g / c if c else 0.0
        word_ratio = gw / cw if cw else 0.0
        note_result: dict[str, Any] = {
            "note": note.name,
            "pages": len(note.pages),
            "chars": sum(len(p.text) for p in note.pages),
            "candidates": c,
            "bold_candidates": g,
            "bold_ratio": round(occ_ratio, 4),
            "candidate_words": cw,
            "bold_words": gw,
            "bold_word_ratio": round(word_ratio, 4),
            "corpus_docs": corpus.n_docs,
            "dictionary_words": len(corpus.dictionary),
            "methods": {},
        }
        for m in methods:
            occ_counts, word_counts = Counts(), Counts()
            for page in note.pages:
                weights = _score_page(page, corpus, background, m)
                gold_idx = {(page.occs[k].start, page.occs[k].end) for k in page.candidates() if page.gold[k]}
                cz = make_cloze(page.text, weights, ClozeOptions(ratio=occ_ratio, allow_duplicates=True))
                hit = sum((b.start, b.end) in gold_idx for b in cz.blanks)
                page_occ = Counts(hit, len(cz.blanks) - hit, len(gold_idx) - hit)
                occ_counts.add(page_occ)
                pages_occ[m.name].append(page_occ)

                cand_words = {page.occs[k].term for k in page.candidates()}
                gold_words = {page.occs[k].term for k in page.candidates() if page.gold[k]}
                n_words = round(word_ratio * len(cand_words) + 1e-9)
                cz = make_cloze(page.text, weights, ClozeOptions(count=n_words))
                chosen = {b.term for b in cz.blanks}
                hit = len(chosen & gold_words)
                page_word = Counts(hit, len(chosen) - hit, len(gold_words) - hit)
                word_counts.add(page_word)
                pages_word[m.name].append(page_word)
            per_method_occ[m.name].add(occ_counts)
            per_method_word[m.name].add(word_counts)
            note_result["methods"][m.name] = {
                "occurrences": occ_counts.as_dict(),
                "words": word_counts.as_dict(),
            }
        per_note.append(note_result)
        if on_note:
            on_note(note.name)
    total_c = sum(n["candidates"] for n in per_note)
    total_g = sum(n["bold_candidates"] for n in per_note)
    total_cw = sum(n["candidate_words"] for n in per_note)
    total_gw = sum(n["bold_words"] for n in per_note)
    return {
        "protocol": __doc__.strip() if __doc__ else "",
        "same_subject": same_subject,
        "notes": per_note,
        "chance_precision_occurrences": round(total_g / total_c, 4) if total_c else 0.0,
        "chance_precision_words": round(total_gw / total_cw, 4) if total_cw else 0.0,
        "methods": {
            m.name: {
                "occurrences": {
                    **per_method_occ[m.name].as_dict(),
                    **bootstrap(pages_occ[m.name], pages_occ[methods[0].name]),
                },
                "words": {
                    **per_method_word[m.name].as_dict(),
                    **bootstrap(pages_word[m.name], pages_word[methods[0].name]),
                },
                "params": {
                    "method": m.params.method.value,
                    "k1": m.params.k1,
                    "b": m.params.b if m.params.length_norm else 0.0,
                    "subject_weight": m.params.subject_weight,
                    "combine_alpha": m.params.combine_alpha,
                    "floor": m.params.floor if m.floor else None,
                },
            }
            for m in methods
        },
    }


@dataclass
class EvalReport:
    results: dict[str, dict[str, Any]]  # setting title -> evaluate() result
    command: str
    background: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        first = next(iter(self.results.values()))
        lines = [
            "# Word weights and blanks: evaluation against students' bold key words",
            "",
            f"Command: `{self.command}`",
            "",
            "Data: `../shared/data/study_notes` (MIT, ChalkPE/Dimigo high-school notes); background corpus: "
            + "; ".join(self.background.get("source", "").splitlines()),
            "",
            "## Protocol",
            "",
            first["protocol"],
            "",
        ]
        for title, r in self.results.items():
            lines += _setting_markdown(title, r)
        return "\n".join(lines) + "\n"


def _setting_markdown(title: str, r: dict[str, Any]) -> list[str]:
    lines = [
        f"## {title}",
        "",
        f"Notes evaluated: {', '.join(n['note'] for n in r['notes'])}. Micro average over all their pages.",
        "",
        "| method | occ. precision | occ. recall | occ. F1 (95% CI) | occ. F1 − tf (95% CI) "
        "| word precision | word recall | word F1 (95% CI) | word F1 − tf (95% CI) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def ci(x: list[float]) -> str:
        return f"[{x[0]:+.3f}, {x[1]:+.3f}]"

    for name, m in r["methods"].items():
        o, w = m["occurrences"], m["words"]
        lines.append(
            f"| {name} | {o['precision']:.3f} | {o['recall']:.3f} | {o['f1']:.3f} "
            f"[{o['f1_ci95'][0]:.3f}, {o['f1_ci95'][1]:.3f}] | {ci(o['f1_minus_baseline_ci95'])} "
            f"| {w['precision']:.3f} | {w['recall']:.3f} | {w['f1']:.3f} "
            f"[{w['f1_ci95'][0]:.3f}, {w['f1_ci95'][1]:.3f}] | {ci(w['f1_minus_baseline_ci95'])} |"
        )
    lines += [
        "",
        "Intervals: 2,000 bootstrap resamples of the pages (seed 0); the difference is paired (same "
        "resampled pages) against the tf baseline.",
    ]
    lines += [
        "",
        f"Chance level (random blanks): occurrence precision ≈ {r['chance_precision_occurrences']:.3f}, "
        f"word precision ≈ {r['chance_precision_words']:.3f} (the share of candidates that are bold).",
        "",
        "Per note (occurrence F1 / word F1):",
        "",
        "| note | pages | candidates | bold ratio | corpus docs | dictionary words | "
        + " | ".join(r["methods"])
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(r["methods"]),
    ]
    for n in r["notes"]:
        cells = [
            f"{n['methods'][k]['occurrences']['f1']:.2f} / {n['methods'][k]['words']['f1']:.2f}"
            for k in r["methods"]
        ]
        lines.append(
            f"| {n['note']} | {n['pages']} | {n['candidates']} | {n['bold_ratio']:.3f} | "
            f"{n['corpus_docs']} | {n['dictionary_words']} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    return lines
