"""Scoring for the detection evaluation: span recall/precision and column-class outcomes.

Both systems are scored the same way: privgate (its Detector, its `scan`) and stock
Presidio (`AnalyzerEngine` with its default recognizers, NER mapping and score threshold,
over the same spaCy model; `BatchAnalyzerEngine` for batches; a presidio-structured-style
column classifier for tables).
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections import Counter

from benchmarks.detect_eval_tables import CLASSES, DIRECT
from benchmarks.detect_eval_texts import ACCEPTS, GOLD_ENTITIES
from benchmarks.detect_eval_values import TITLES

# Actions that leave a quasi-identifier or plain category unusable for training: the
# column is gone (drop), replaced by tokens or ciphertext, masked, or scrubbed as if free
# text. keep, generalize, date_shift, ldp (and scrub of a free-text column) keep it usable.
DESTROYING = frozenset({"drop", "redact", "mask", "tokenize", "encrypt"})
STRUCTURED_SAMPLE_SEED = 123  # presidio-structured's `df.sample(n, random_state=123)`


# --------------------------------------------------------------------------- engines


def stock_engine(model_name: str):
    """Presidio's AnalyzerEngine as a user sets it up: default recognizers, default NER
    mapping (ORGANIZATION reported), default threshold (0), over the named spaCy model."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from transforms.detect.engine import offline_tldextract

    offline_tldextract()
    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model_name}],
        }
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])


def stock_spans(engine, texts: list[str], batch_size: int = 256) -> list[list[tuple]]:
    """Stock Presidio's findings per text, as it returns them: [(start, end, entity)]."""
    from presidio_analyzer import BatchAnalyzerEngine

    batch = BatchAnalyzerEngine(analyzer_engine=engine)
    return [
        [(r.start, r.end, r.entity_type) for r in res]
        for res in batch.analyze_iterator(texts, language="en", batch_size=batch_size)
    ]


# --------------------------------------------------------------------------- spans


def _overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


_TITLE_WORDS = frozenset(t.lower() for t in TITLES)


def _covered(text: str, g, pred) -> bool:
    """Every letter and digit of a gold span lies inside some predicted span (spaces,
    punctuation and a person's title, `Mr.`, may stay)."""
    for m in re.finditer(r"[^\W_]+", text[g[0] : g[1]]):
        if g[2] == "PERSON" and m.group().lower() in _TITLE_WORDS:
            continue
        for i in range(g[0] + m.start(), g[0] + m.end()):
            if not any(p[0] <= i < p[1] for p in pred):
                return False
    return True


def span_scores(data, predicted: list[list[tuple]]) -> dict:
    """Recall per gold entity, precision per predicted entity type, look-alike hits.

    A gold span is found when a predicted span of an accepted type (`ACCEPTS`) overlaps
    it; covered when the predicted spans of any type hide all of its characters. A
    predicted span is correct when it overlaps a gold span its type is accepted for.

    Args:
        data: LabelledText list.
        predicted: per text, [(start, end, entity, ...)].
    Returns:
        {"entities": {gold entity: {gold, found, covered, recall, coverage}},
         "forms": {"ENTITY[form]": recall}, "sources": {"ENTITY[source]": {gold, found}},
         "types": {predicted type: {predicted, correct,
         precision}},
         "negatives": {total, hit}, "gold_total", "found_total"}
    """
    ents = {e: Counter() for e in GOLD_ENTITIES}
    forms: dict[tuple, Counter] = {}
    sources: dict[tuple, Counter] = {}
    types: dict[str, Counter] = {}
    neg_total = neg_hit = 0
    for item, pred in zip(data, predicted, strict=True):
        for g in item.gold:
            c = ents[g.entity]
            found = any(p[2] in ACCEPTS[g.entity] and _overlaps(g, p) for p in pred)
            c["gold"] += 1
            c["found"] += found
            c["covered"] += _covered(item.text, g, pred)
            f = forms.setdefault((g.entity, g.form), Counter())
            f["gold"] += 1
            f["found"] += found
            if g.source:
                f = sources.setdefault((g.entity, g.source), Counter())
                f["gold"] += 1
                f["found"] += found
        for p in pred:
            c = types.setdefault(p[2], Counter())
            c["predicted"] += 1
            c["correct"] += any(p[2] in ACCEPTS[g.entity] and _overlaps(g, p) for g in item.gold)
        for x in item.negatives:
            neg_total += 1
            neg_hit += any(_overlaps(x, p) for p in pred)
    out_e = {}
    for e, c in ents.items():
        n = c["gold"]
        out_e[e] = {
            "gold": n,
            "found": c["found"],
            "covered": c["covered"],
            "recall": c["found"] / n if n else float("nan"),
            "coverage": c["covered"] / n if n else float("nan"),
        }
    out_t = {
        t: {
            "predicted": c["predicted"],
            "correct": c["correct"],
            "precision": c["correct"] / c["predicted"],
        }
        for t, c in sorted(types.items())
    }
    return {
        "entities": out_e,
        "forms": {f"{e}[{k}]": c["found"] / c["gold"] for (e, k), c in sorted(forms.items())},
        "sources": {
            f"{e}[{k}]": {"gold": c["gold"], "found": c["found"]}
            for (e, k), c in sorted(sources.items())
        },
        "types": out_t,
        "negatives": {"total": neg_total, "hit": neg_hit},
        "gold_total": sum(c["gold"] for c in ents.values()),
        "found_total": sum(c["found"] for c in ents.values()),
    }


# --------------------------------------------------------------------------- columns


def write_csv(path: str, columns) -> None:
    """A table's columns as a CSV file (empty cells for missing values)."""
    rows = len(columns[0].values)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([c.header for c in columns])
        for i in range(rows):
            w.writerow(["" if c.values[i] is None else c.values[i] for c in columns])


def privgate_proposal(csv_path: str, sample: int) -> dict[str, dict]:
    """`privgate scan` on a CSV file, its YAML loaded: header -> column spec."""
    import yaml

    from pipelines.scan import scan

    doc = yaml.safe_load(scan(csv_path, "csv", sample=sample))
    return {str(k): v for k, v in (doc.get("columns") or {}).items()}


def structured_baseline(engine, values: list, n: int, batch_size: int = 64) -> str | None:
    """presidio-structured's `PandasAnalysisBuilder` (most_common strategy): analyze `n`
    randomly sampled rows (seed 123) and name the column after the most common entity
    among all findings; a column with any entity gets anonymized."""
    from presidio_analyzer import BatchAnalyzerEngine

    rng = random.Random(STRUCTURED_SAMPLE_SEED)
    rows = rng.sample(range(len(values)), min(n, len(values)))
    picked = [values[i] for i in rows if values[i] is not None and str(values[i]).strip()]
    if not picked:
        return None
    counts: Counter = Counter()
    batch = BatchAnalyzerEngine(analyzer_engine=engine)
    for res in batch.analyze_iterator(picked, language="en", batch_size=batch_size):
        counts.update(r.entity_type for r in res)
    return counts.most_common(1)[0][0] if counts else None


def column_outcome(col, spec: dict | None, baseline: str | None) -> dict:
    """One column's result for both systems (no values: header, class, actions)."""
    action = spec.get("action", "keep") if spec else "drop"  # unlisted -> unknown_columns
    destroyed = action in DESTROYING or (action == "scrub" and not col.free_text)
    return {
        "table": col.table,
        "column": col.header,
        "class": col.klass,
        "what": col.what,
        "privgate_action": action,
        "privgate_pii": (spec or {}).get("pii"),
        "privgate_protects": action != "keep",
        "privgate_destroys": destroyed,
        "baseline_entity": baseline,
        "baseline_protects": baseline is not None,
        "baseline_destroys": baseline is not None,
    }


def column_summary(outcomes: list[dict]) -> dict:
    """Per class: columns, and for each system protected (direct) / destroyed (others)."""
    out = {}
    for k in CLASSES:
        rows = [o for o in outcomes if o["class"] == k]
        key = "protects" if k == DIRECT else "destroys"
        out[k] = {
            "columns": len(rows),
            "measure": "protected" if k == DIRECT else "tokenized or dropped",
            "privgate": sum(o[f"privgate_{key}"] for o in rows),
            "presidio": sum(o[f"baseline_{key}"] for o in rows),
        }
    return out


def table_paths(tmpdir: str, tables: dict) -> dict[str, str]:
    """Write each table of a half to `tmpdir`; shape -> CSV path."""
    paths = {}
    for shape, cols in tables.items():
        paths[shape] = os.path.join(tmpdir, f"{shape}.csv")
        write_csv(paths[shape], cols)
    return paths
