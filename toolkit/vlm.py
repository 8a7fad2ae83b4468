"""Parse raw VLM answers (a score per emotion, a label, reasoning, modality contributions) into labels
and normalised class scores.

Accepted: our schema (prompt.txt: ``scores``, ``label``, ``reasoning``, ``contribution``) and the widely
shared Chinese prompt's schema (``情绪``, ``label``, ``推理过程``, ``贡献度``), wrapped in code fences or
prose, with trailing commas or single quotes, scores that do not sum to 1 and label synonyms in English
or Chinese. An answer that cannot be used raises ``SkipAnswer`` with a short reason; it is never fatal.
"""
import ast
import csv
import dataclasses
import json
import math
import os
import re

import numpy as np

from toolkit.errors import UserError
from toolkit.tables import sample_key

# Why an answer was skipped (the keys of the summary's "skipped" counts).
EMPTY = "empty"
TRUNCATED = "truncated"
UNPARSEABLE = "unparseable"
NO_EMOTION = "no_label_or_scores"
OUT_OF_CLASS = "out_of_class_label"
UNREADABLE = "unreadable_record"  # a JSONL line that is not a JSON object with a name
NO_ANSWER = "no_answer"  # a clip of --names without any answer
BAD_RECORD = object()  # the answer of an unreadable record

# Spellings a VLM uses for the MER classes (lower case). Only used for classes in the active class list.
SYNONYMS = {
    "neutral": ["neutral", "neutrality", "calm", "calmness", "neutral emotion", "no emotion", "中性", "平静", "中立", "平淡", "无明显情绪"],
    "angry": ["angry", "anger", "mad", "furious", "annoyed", "irritated", "rage", "生气", "愤怒", "恼怒", "气愤", "发怒"],
    "happy": ["happy", "happiness", "joy", "joyful", "glad", "pleased", "delighted", "开心", "高兴", "快乐", "喜悦", "愉快"],
    "sad": ["sad", "sadness", "sorrow", "sorrowful", "unhappy", "depressed", "悲伤", "难过", "伤心", "沮丧", "失落"],
    "worried": ["worried", "worry", "worrying", "anxious", "anxiety", "nervous", "concerned", "concern", "担忧", "焦虑", "担心", "忧虑", "紧张"],
    "surprise": ["surprise", "surprised", "surprising", "astonished", "astonishment", "amazed", "amazement", "惊讶", "吃惊", "惊奇", "震惊"],
}
_CANONICAL = {word: cls for cls, words in SYNONYMS.items() for word in words}

# Top-level keys, compared after lower-casing and stripping spaces/underscores.
SCORE_KEYS = ["scores", "score", "emotions", "emotion", "emotion_scores", "probabilities", "probs", "情绪", "情绪得分", "情绪分数", "得分"]
LABEL_KEYS = ["label", "final_label", "emotion_label", "final_emotion", "标签", "最终情绪", "情绪标签"]
REASON_KEYS = ["reasoning", "reason", "rationale", "analysis", "推理过程", "推理", "理由", "分析"]
CONTRIB_KEYS = ["contribution", "contributions", "modality_contribution", "贡献度", "贡献"]
MODALITIES = {
    "video": ["video", "visual", "vision", "frames", "视频", "画面", "视觉"],
    "audio": ["audio", "acoustic", "speech", "voice", "音频", "声音", "语音"],
    "subtitle": ["subtitle", "subtitles", "text", "transcript", "字幕", "文本"],
}


class SkipAnswer(Exception):
    """An answer that yields no usable label; ``reason`` is one of the reason constants above."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclasses.dataclass
class Answer:
    label: str
    scores: np.ndarray  # float, sums to 1, in class-list order
    reasoning: str = ""
    contribution: dict = dataclasses.field(default_factory=dict)  # video/audio/subtitle -> share
    notes: list = dataclasses.field(default_factory=list)  # what was repaired, e.g. "label_from_scores"


# ----------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------
def _squash(word):
    return re.sub(r"[\s_\-]+", " ", str(word).strip().strip("\"'`.,;:!?。，；：！？()（）[]【】<>《》*")).lower().strip()


def normalize_label(word, classes):
    """Map a label or score key ('Surprised', '惊讶', 'worry (担忧)') to a class in ``classes``, else None."""
    text = _squash(word)
    if not text:
        return None
    lowered = {c.lower(): c for c in classes}
    for candidate in (text, _CANONICAL.get(text)):
        if candidate is not None and candidate.lower() in lowered:
            return lowered[candidate.lower()]
    # 'sad (悲伤)', 'worried/anxious': accept when every known part names the same class
    parts = [p for p in re.split(r"[^\w\u4e00-\u9fff]+", text) if p]
    found = {normalize_label(p, classes) for p in parts if len(parts) > 1}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


# ----------------------------------------------------------------------------------------------------
# Finding the JSON object in the text
# ----------------------------------------------------------------------------------------------------
def _objects(text):
    """Yield (start, end) of each brace-balanced span in order; end is None for a span that never closes
    (then scanning resumes inside it, so a stray '{' in prose does not hide the answer)."""
    i, n = 0, len(text)
    while True:
        start = text.find("{", i)
        if start < 0:
            return
        depth, quote, escaped, j = 0, None, False, start
        while j < n:
            ch = text[j]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = None
            elif ch == '"' or (ch == "'" and _opens_string(text, j)):
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= n:
            yield start, None
            i = start + 1
        else:
            yield start, j + 1
            i = j + 1


def _opens_string(text, j):
    """A ' opens a string only in Python-style dicts ({'a': 'b'}), not as an apostrophe in a word."""
    k = j - 1
    while k >= 0 and text[k].isspace():
        k -= 1
    return k < 0 or text[k] in "{,:["


def _loads(span):
    """json.loads, then with trailing commas removed, then as a Python literal (single quotes)."""
    attempts = [span, re.sub(r",\s*([}\]])", r"\1", span)]
    for attempt in attempts:
        try:
            return json.loads(attempt)
        except ValueError:
            pass
    for attempt in attempts:
        py = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", attempt)))
        try:
            return ast.literal_eval(py)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None


def _emotion_object(obj):
    """``obj`` or the first dict nested in it that has a score or label key, else None."""
    todo = [obj]
    while todo:
        cur = todo.pop(0)
        if _find(cur, SCORE_KEYS + LABEL_KEYS) is not None:
            return cur
        todo.extend(v for v in cur.values() if isinstance(v, dict))
    return None


def find_json(text):
    """The first JSON object in ``text`` with a score or label key; else SkipAnswer(empty, truncated,
    unparseable or no_label_or_scores)."""
    if text is None or not str(text).strip():
        raise SkipAnswer(EMPTY)
    text = str(text)
    truncated = found_dict = False
    for start, end in _objects(text):
        if end is None:
            truncated = True
            continue
        obj = _loads(text[start:end])
        if isinstance(obj, dict):
            found = _emotion_object(obj)
            if found is not None:
                return found
            found_dict = found_dict or not truncated
    if truncated:
        raise SkipAnswer(TRUNCATED, "the JSON object never closes")
    if found_dict:
        raise SkipAnswer(NO_EMOTION, "the JSON object has no scores and no label")
    raise SkipAnswer(UNPARSEABLE, "no JSON object could be read")


# ----------------------------------------------------------------------------------------------------
# Reading the fields
# ----------------------------------------------------------------------------------------------------
def _key(word):
    return re.sub(r"[\s_\-]+", "", str(word)).lower()


def _find(obj, keys):
    """The value of the first key of ``keys`` present in ``obj`` (case/space-insensitive), else None."""
    present = {_key(k): v for k, v in obj.items() if v is not None}
    return next((present[_key(k)] for k in keys if _key(k) in present), None)


def _number(value):
    """A finite float from 0.3, '0.3', '30%'; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _scores(raw, classes, notes):
    """Class-ordered non-negative scores summing to 1, or None when there are none usable."""
    scores = np.zeros(len(classes))
    if isinstance(raw, list) and len(raw) == len(classes):  # a bare list in class order
        raw = dict(zip(classes, raw))
    if not isinstance(raw, dict):
        return None
    for key, value in raw.items():
        cls = normalize_label(key, classes)
        x = _number(value)
        if cls is None or x is None:
            notes.append("unknown_score_key" if cls is None else "non_numeric_score")
            continue
        if x < 0:
            notes.append("negative_score")
            x = 0.0
        scores[classes.index(cls)] += x
    total = scores.sum()
    if total <= 0:
        return None
    if abs(total - 1) > 0.011:
        notes.append("scores_renormalised")
    return scores / total


def _contribution(raw):
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, value in raw.items():
        modality = next((m for m, words in MODALITIES.items() if _key(key) in words), None)
        x = _number(value)
        if modality is not None and x is not None and x >= 0:
            out[modality] = x
    total = sum(out.values())
    return {m: x / total for m, x in out.items()} if total > 0 else {}


def parse_answer(text, classes):
    """Parse one raw answer (text, or an already decoded dict) into an ``Answer``; else SkipAnswer."""
    if text is BAD_RECORD:
        raise SkipAnswer(UNREADABLE, "the record itself could not be read")
    obj = _emotion_object(text) if isinstance(text, dict) else find_json(text)
    if obj is None:
        raise SkipAnswer(NO_EMOTION, "the answer object has no scores and no label")
    notes = []
    raw_scores, raw_label = _find(obj, SCORE_KEYS), _find(obj, LABEL_KEYS)
    if raw_label is None and isinstance(raw_scores, str):  # {"emotion": "sad"}
        raw_scores, raw_label = None, raw_scores
    scores = _scores(raw_scores, classes, notes)
    if isinstance(raw_label, list) and len(raw_label) == 1:
        raw_label = raw_label[0]
    has_label = raw_label is not None and _squash(raw_label) != ""
    label = normalize_label(raw_label, classes) if has_label else None
    if has_label and label is None:
        raise SkipAnswer(OUT_OF_CLASS, str(raw_label)[:40])
    if label is None and scores is None:
        raise SkipAnswer(NO_EMOTION, "neither a label nor scores")
    if label is None:
        label = classes[int(np.argmax(scores))]
        notes.append("label_from_scores")
    elif scores is None:
        scores = np.eye(len(classes))[classes.index(label)]
        notes.append("scores_from_label")
    elif classes[int(np.argmax(scores))] != label:
        notes.append("label_disagrees_with_scores")
    reasoning = _find(obj, REASON_KEYS)
    return Answer(label, scores, "" if reasoning is None else str(reasoning),
                  _contribution(_find(obj, CONTRIB_KEYS)), sorted(set(notes)))


# ----------------------------------------------------------------------------------------------------
# Reading answer files
# ----------------------------------------------------------------------------------------------------
ANSWER_EXTENSIONS = (".txt", ".json")
ANSWER_FIELDS = ("answer", "response")


def read_answers(path):
    """[(name, raw answer)] from a folder of <name>.txt/.json, a JSONL/JSON file or a CSV (name, answer).

    Lines of a JSONL file that cannot be read are returned as (``"line N"``, BAD_RECORD) so they are counted.
    """
    if not os.path.exists(path):
        raise UserError(f"answers {path} not found; pass a folder of <name>.txt/.json answers, a .jsonl or a .csv file")
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(ANSWER_EXTENSIONS) and not f.startswith("."))
        if not files:
            raise UserError(f"answer folder {path} has no <name>.txt or <name>.json files; save one raw VLM answer per clip there")
        records = []
        for f in files:
            with open(os.path.join(path, f), encoding="utf-8", errors="replace") as fh:
                records.append((sample_key(f), fh.read()))
        return records
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        records = _read_csv(path)
    elif ext in (".jsonl", ".json", ".ndjson"):
        records = _read_json(path)
    else:
        raise UserError(f"answers {path}: unknown file type '{ext}'; use a folder, a .jsonl (name, answer) or a .csv (name, answer)")
    if not records:
        raise UserError(f"answers {path} holds no answers; it needs records with a 'name' and an 'answer'")
    return records


def _read_csv(path):
    csv.field_size_limit(1 << 30)  # long answers exceed the 128 kB default
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        fields = {(k or "").strip().lower(): k for k in reader.fieldnames or []}
        answer_col = next((fields[k] for k in ANSWER_FIELDS if k in fields), None)
        if "name" not in fields or answer_col is None:
            raise UserError(f"answers {path} must have columns 'name' and 'answer', found {list(fields)}")
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise UserError(f"answers {path}: not a readable CSV ({exc}); quote answers that contain commas or newlines") from None
    return [(sample_key(r[fields["name"]]), r[answer_col] or "") for r in rows if (r[fields["name"]] or "").strip()]


def _record(obj):
    """(name, answer) of one decoded record, or None."""
    if not isinstance(obj, dict) or "name" not in obj:
        return None
    answer = next((obj[k] for k in ANSWER_FIELDS if k in obj), None)
    return sample_key(obj["name"]), answer


def _read_json(path):
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        text = f.read()
    try:  # a whole-file JSON list of records, or a {name: answer} mapping
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and "name" not in whole:
        return [(sample_key(k), v) for k, v in whole.items()]
    if isinstance(whole, (dict, list)):
        lines = list(enumerate(whole if isinstance(whole, list) else [whole], 1))
    else:
        lines = []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    lines.append((i + 1, json.loads(line)))
                except ValueError:
                    lines.append((i + 1, None))
    records = [(_record(obj) or (f"line {i}", BAD_RECORD)) for i, obj in lines]
    if records and all(r[0].startswith("line ") for r in records):
        raise UserError(f"answers {path}: no line is a JSON object with keys 'name' and 'answer'")
    return records


# ----------------------------------------------------------------------------------------------------
# Parsing a set of answers
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ParseResult:
    parsed: dict  # name -> Answer, in order of first appearance (or of ``expected``)
    skipped: dict  # reason -> [names]
    read: int = 0  # records read
    duplicates: int = 0  # records whose name was already seen (a parsable one wins, else the last)
    not_expected: list = dataclasses.field(default_factory=list)  # names outside ``expected``

    def label_counts(self, classes):
        counts = {c: 0 for c in classes}
        for answer in self.parsed.values():
            counts[answer.label] += 1
        return counts

    def note_counts(self):
        counts = {}
        for answer in self.parsed.values():
            for note in answer.notes:
                counts[note] = counts.get(note, 0) + 1
        return dict(sorted(counts.items()))

    def mean_contribution(self):
        shares = [a.contribution for a in self.parsed.values() if a.contribution]
        return {m: round(float(np.mean([s.get(m, 0.0) for s in shares])), 4) for m in MODALITIES} if shares else {}


def parse_answers(records, classes, expected=None):
    """Parse [(name, raw answer)]; with ``expected`` names, ignore others and count those without any."""
    expected_set = set(expected) if expected is not None else None
    outcome, not_expected = {}, []  # name -> Answer or SkipAnswer
    for name, raw in records:
        if expected_set is not None and name not in expected_set and raw is not BAD_RECORD:
            not_expected.append(name)
            continue
        try:
            result = parse_answer(raw, classes)
        except SkipAnswer as skip:
            result = skip
        if not isinstance(outcome.get(name), Answer) or isinstance(result, Answer):
            outcome[name] = result
    n_used = len(records) - len(not_expected)
    duplicates = n_used - len(outcome)
    order = list(outcome) if expected is None else [n for n in expected if n in outcome] + [n for n in outcome if n not in expected_set]
    parsed, skipped = {}, {}
    for name in order:
        result = outcome[name]
        if isinstance(result, Answer):
            parsed[name] = result
        else:
            skipped.setdefault(result.reason, []).append(name)
    if expected is not None:
        absent = [n for n in dict.fromkeys(expected) if n not in outcome]
        if absent:
            skipped[NO_ANSWER] = absent
    return ParseResult(parsed, skipped, len(records), duplicates, not_expected)
