"""Parse raw VLM answers (a score per emotion, a label, reasoning, modality contributions) into labels
and normalised class scores.

Accepted: our schema (prompt.txt: ``scores``, ``label``, ``reasoning``, ``contribution``) and the widely
shared Chinese prompt's schema (``情绪``, ``label``, ``推理过程``, ``贡献度``), wrapped in code fences or
prose, with trailing commas or single quotes, scores that do not sum to 1 and label synonyms in English
or Chinese. An answer that cannot be used raises ``SkipAnswer`` with a short reason; it is never fatal.
"""
import ast
import collections
import csv
import dataclasses
import io
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
TOO_LONG = "too_long"  # longer than MAX_ANSWER_CHARS
NON_FINITE = "non_finite_score"  # a score of inf or nan, or a number beyond the float range
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
MAX_ANSWER_CHARS = 1_000_000  # a real answer is a few kB; anything longer is skipped unread
MAX_CANDIDATES = 64  # balanced spans tried per answer (the answer object comes among the first few)
MAX_RESCANS = 1  # passes restarted after a brace that never closes (fresh string state)
MAX_LITERAL_CHARS = 100_000  # the slower Python-literal fallback (single quotes) only up to this size
_BRACE_OR_QUOTE = re.compile(r"[{}\"']")
_STRING_REST = {q: re.compile(rf"[^{q}\\]*(?:\\.[^{q}\\]*)*{q}", re.S) for q in "\"'"}  # after the quote


def _scan(text, pos=0):
    """One left-to-right pass from ``pos``: (spans, unclosed).

    ``spans``: (start, end) of each brace-balanced span not inside another balanced span, in order. A
    span inside a brace that never closes counts, so a stray '{' in prose does not hide the answer.
    ``unclosed``: starts of the braces that never close (a string left open at the end leaves its
    braces open too). Strings are skipped with one regular-expression match each, so the pass is
    linear in the text, whatever the nesting.
    """
    opened, inner, spans = [], [], []  # open brace starts; balanced spans directly inside each (lazy)
    while True:
        m = _BRACE_OR_QUOTE.search(text, pos)
        if m is None:
            break
        j, ch = m.start(), m.group()
        pos = j + 1
        if ch == "{":
            opened.append(j)
            inner.append(None)
        elif ch == "}":
            if opened:  # a '}' outside any object is prose
                span = (opened.pop(), j + 1)
                inner.pop()  # spans inside a balanced span are part of it
                if not opened:
                    spans.append(span)
                elif inner[-1] is None:
                    inner[-1] = [span]
                else:
                    inner[-1].append(span)
        elif opened and (ch == '"' or _opens_string(text, j)):  # quotes in prose outside braces are text
            closing = _STRING_REST[ch].match(text, pos)
            if closing is None:
                break
            pos = closing.end()
    spans.extend(span for group in inner if group for span in group)
    return sorted(spans), opened


def _opens_string(text, j):
    """A ' opens a string only in Python-style dicts ({'a': 'b'}), not as an apostrophe in a word."""
    k = j - 1
    while k >= 0 and text[k].isspace():
        k -= 1
    return k < 0 or text[k] in "{,:["


def _loads(span):
    """json.loads, then with trailing commas removed, then as a Python literal (single quotes).

    None when nothing reads it, including nesting too deep for the parsers (RecursionError)."""
    attempts = [span, re.sub(r",\s*([}\]])", r"\1", span)]
    for attempt in attempts:
        try:
            return json.loads(attempt)
        except (ValueError, RecursionError):
            pass
    if len(span) > MAX_LITERAL_CHARS:
        return None
    for attempt in attempts:
        py = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", attempt)))
        try:
            return ast.literal_eval(py)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None


def _emotion_object(obj):
    """``obj`` or the first dict nested in it that has a score or label key, else None."""
    todo = collections.deque([obj])
    while todo:
        cur = todo.popleft()
        if _find(cur, SCORE_KEYS + LABEL_KEYS) is not None:
            return cur
        todo.extend(v for v in cur.values() if isinstance(v, dict))
    return None


def find_json(text):
    """The first JSON object in ``text`` with a score or label key; else SkipAnswer(empty, too_long,
    truncated, unparseable or no_label_or_scores). The work is linear in the text and bounded."""
    if text is None or not str(text).strip():
        raise SkipAnswer(EMPTY)
    text = str(text)
    if len(text) > MAX_ANSWER_CHARS:
        raise SkipAnswer(TOO_LONG, f"{len(text)} characters, more than {MAX_ANSWER_CHARS}")
    tried, found_dict, first_unclosed, pos = set(), False, None, 0
    for _ in range(1 + MAX_RESCANS):
        spans, unclosed = _scan(text, pos)
        if first_unclosed is None:
            first_unclosed = unclosed[0] if unclosed else len(text)
        found, saw_dict = _try_spans(text, spans, tried, first_unclosed)
        if found is not None:
            return found
        found_dict = found_dict or saw_dict
        if not unclosed:
            break
        pos = unclosed[0] + 1  # rescan inside the brace that never closed, in case a quote misled us
    if first_unclosed < len(text):
        raise SkipAnswer(TRUNCATED, "the JSON object never closes")
    if found_dict:
        raise SkipAnswer(NO_EMOTION, "the JSON object has no scores and no label")
    raise SkipAnswer(UNPARSEABLE, "no JSON object could be read")


def _try_spans(text, spans, tried, first_unclosed):
    """(the first emotion object among the untried ``spans`` or None, whether a dict was read before the first
    brace that never closes); at most MAX_CANDIDATES spans are tried over the whole answer."""
    saw_dict = False
    for span in spans:
        if len(tried) >= MAX_CANDIDATES:
            break
        if span in tried:
            continue
        tried.add(span)
        obj = _loads(text[span[0]:span[1]])
        if isinstance(obj, dict):
            found = _emotion_object(obj)
            if found is not None:
                return found, saw_dict
            saw_dict = saw_dict or span[0] < first_unclosed
    return None, saw_dict


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
    """A float from 0.3, '0.3', '30%' (inf for numbers too large for a float, nan stays nan); None for
    what is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range, e.g. 1 followed by 400 zeros
        return math.inf
    except (TypeError, ValueError):
        return None


def _shares(values):
    """Non-negative values → (shares summing to 1, their total), or (None, 0) when they sum to 0.
    Divides by the largest value first, so values near the float maximum (1e308) do not overflow."""
    top = max(values, default=0.0)
    if top <= 0:
        return None, 0.0
    scaled = [x / top for x in values]
    total = math.fsum(scaled)
    return [x / total for x in scaled], top * total  # the total itself may be inf; only the shares are used


def _scores(raw, classes, notes):
    """Class-ordered non-negative scores summing to 1, or None when there are none usable.

    A score that is not finite (inf, nan, an overflowing number) makes every share meaningless:
    SkipAnswer(non_finite_score) rather than a guess from the other scores."""
    if isinstance(raw, list) and len(raw) == len(classes):  # a bare list in class order
        raw = dict(zip(classes, raw))
    if not isinstance(raw, dict):
        return None
    found = []  # (class index, score)
    for key, value in raw.items():
        cls = normalize_label(key, classes)
        x = _number(value)
        if x is not None and not math.isfinite(x):
            raise SkipAnswer(NON_FINITE, f"score for {str(key)[:20]!r} is not finite ({x})")
        if cls is None or x is None:
            notes.append("unknown_score_key" if cls is None else "non_numeric_score")
            continue
        if x < 0:
            notes.append("negative_score")
            x = 0.0
        found.append((classes.index(cls), x))
    shares, total = _shares([x for _, x in found])
    if shares is None:
        return None
    scores = np.zeros(len(classes))
    for (i, _), share in zip(found, shares):
        scores[i] += share
    if abs(total - 1) > 0.011:
        notes.append("scores_renormalised")
    return scores


def _contribution(raw):
    """Modality -> share summing to 1; {} when absent or unusable (a non-finite share spoils them all)."""
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, value in raw.items():
        modality = next((m for m, words in MODALITIES.items() if _key(key) in words), None)
        x = _number(value)
        if modality is None or x is None:
            continue
        if not math.isfinite(x):
            return {}
        if x >= 0:
            out[modality] = x
    shares, _ = _shares(list(out.values()))
    return dict(zip(out, shares)) if shares else {}


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
    elif scores[classes.index(label)] < scores.max():
        notes.append("label_disagrees_with_scores")
    reasoning = _find(obj, REASON_KEYS)
    return Answer(label, scores, "" if reasoning is None else str(reasoning),
                  _contribution(_find(obj, CONTRIB_KEYS)), sorted(set(notes)))


# ----------------------------------------------------------------------------------------------------
# Reading answer files
# ----------------------------------------------------------------------------------------------------
ANSWER_EXTENSIONS = (".txt", ".json")
NOT_ANSWERS = {"describe.summary.json"}  # the run summary describe.py keeps beside its answers
ANSWER_FIELDS = ("answer", "response")


def read_answers(path):
    """[(name, raw answer)] from a folder of <name>.txt/.json, a JSONL/JSON file or a CSV (name, answer).

    Records that cannot be read (a JSONL line that is not a JSON object with a name, a name that cannot
    be a file name) are returned as (``"line N"``, BAD_RECORD) so they are counted. A file that cannot
    be read at all, or is not UTF-8 text, is a UserError naming it.
    """
    if not os.path.exists(path):
        raise UserError(f"answers {path} not found; pass a folder of <name>.txt/.json answers, a .jsonl or a .csv file")
    if os.path.isdir(path):
        return _read_folder(path)
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


def _read_text(path, what):
    """The UTF-8 text of ``path`` (a BOM is dropped); a one-line UserError when unreadable or not UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path} ({exc.strerror or exc}); check that it exists and is readable") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                        "re-save it as UTF-8") from None


def _read_folder(path):
    try:
        entries = sorted(os.listdir(path))
    except OSError as exc:
        raise UserError(f"cannot list answer folder {path} ({exc.strerror or exc}); check its permissions") from None
    files = [f for f in entries if f.lower().endswith(ANSWER_EXTENSIONS) and not f.startswith(".") and f not in NOT_ANSWERS
             and not os.path.isdir(os.path.join(path, f))]
    if not files:
        raise UserError(f"answer folder {path} has no <name>.txt or <name>.json files; save one raw VLM answer per clip there")
    return [(clip_name(f), _read_text(os.path.join(path, f), "answer file")) if clip_name(f) else (f"file {ascii(f)}", BAD_RECORD)
            for f in files]


def _read_csv(path):
    csv.field_size_limit(1 << 30)  # long answers exceed the 128 kB default
    reader = csv.DictReader(io.StringIO(_read_text(path, "answers"), newline=""))
    fields = {(k or "").strip().lower(): k for k in reader.fieldnames or []}
    answer_col = next((fields[k] for k in ANSWER_FIELDS if k in fields), None)
    if "name" not in fields or answer_col is None:
        raise UserError(f"answers {path} must have columns 'name' and 'answer', found {list(fields)}")
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise UserError(f"answers {path}: not a readable CSV ({exc}); quote answers that contain commas or newlines") from None
    records = []
    for i, row in enumerate(rows, 2):
        raw_name = row[fields["name"]] or ""
        if raw_name.strip():
            name = clip_name(raw_name)
            records.append((name, row[answer_col] or "") if name else (f"line {i}", BAD_RECORD))
    return records


def clip_name(raw):
    """The sample key of a record's name, or None when it cannot name a file (empty, a NUL byte, not
    encodable as UTF-8)."""
    key = sample_key(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return key if key.strip() and "\0" not in key else None


def _record(obj):
    """(name, answer) of one decoded record, or None."""
    if not isinstance(obj, dict) or clip_name(obj.get("name")) is None:
        return None
    answer = next((obj[k] for k in ANSWER_FIELDS if k in obj), None)
    return clip_name(obj["name"]), answer


def _decode(text):
    """json.loads, or None when the text is not JSON or nests deeper than the parser follows."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _read_json(path):
    text = _read_text(path, "answers")
    whole = _decode(text)  # a whole-file JSON list of records, or a {name: answer} mapping
    if isinstance(whole, dict) and "name" not in whole:
        return [(name, v) if name else (f"entry {i}", BAD_RECORD)
                for i, (name, v) in enumerate(((clip_name(k), v) for k, v in whole.items()), 1)]
    if isinstance(whole, (dict, list)):
        lines = list(enumerate(whole if isinstance(whole, list) else [whole], 1))
    else:
        lines = [(i + 1, _decode(line)) for i, line in enumerate(text.splitlines()) if line.strip()]
    records = [(_record(obj) or (f"line {i}", BAD_RECORD)) for i, obj in lines]
    if records and all(r[1] is BAD_RECORD for r in records):
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
        except RecursionError:  # nesting deeper than Python follows, wherever in the answer it sits
            result = SkipAnswer(UNPARSEABLE, "nested too deeply")
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
