"""Every answer variant the VLM parser must read, repair or skip."""
import json
import os

import numpy as np
import pytest

from toolkit import vlm

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OURS = {"scores": {"neutral": 0.05, "angry": 0.02, "happy": 0.01, "sad": 0.12, "worried": 0.75, "surprise": 0.05},
        "label": "worried", "reasoning": "frowns; hesitant voice", "contribution": {"video": 0.35, "audio": 0.25, "subtitle": 0.4}}
ZH = {"推理过程": "眉头微皱，语气迟疑，综合判断人物的情绪为担心。",
      "情绪": {"neutral": 0.1, "angry": 0.05, "happy": 0.05, "sad": 0.2, "worried": 0.5, "surprise": 0.1},
      "label": "worried", "贡献度": {"视频": 0.5, "音频": 0.3, "字幕": 0.2}}


def parse(text):
    return vlm.parse_answer(text, CLASSES)


def skip_reason(text):
    with pytest.raises(vlm.SkipAnswer) as err:
        parse(text)
    return err.value.reason


def test_our_schema():
    a = parse(json.dumps(OURS))
    assert a.label == "worried" and a.notes == []
    np.testing.assert_allclose(a.scores, [0.05, 0.02, 0.01, 0.12, 0.75, 0.05])
    assert a.reasoning == "frowns; hesitant voice"
    assert a.contribution == pytest.approx({"video": 0.35, "audio": 0.25, "subtitle": 0.4})


def test_chinese_key_schema():
    a = parse(json.dumps(ZH, ensure_ascii=False, indent=2))
    assert a.label == "worried" and a.scores[3] == pytest.approx(0.2)
    assert a.reasoning.startswith("眉头") and a.contribution == pytest.approx({"video": 0.5, "audio": 0.3, "subtitle": 0.2})


@pytest.mark.parametrize("wrap", [
    "```json\n{}\n```",
    "```\n{}\n```",
    "根据视频、音频和字幕的综合分析，结果如下：\n```json\n{}\n```\n以上分析仅供参考。",
    "Sure! Here's my answer: {} Let me know if you need more.",
    "Note: a stray { brace in prose.\n{}",
])
def test_fences_and_prose_around(wrap):
    assert parse(wrap.replace("{}", json.dumps(ZH, ensure_ascii=False))).label == "worried"


def test_nested_braces_and_quotes_inside_strings():
    body = dict(OURS, reasoning='He says "{not now}" and } then {sighs; it\'s {{odd')
    a = parse("prefix {oops} " + json.dumps(body))
    assert a.label == "worried" and a.reasoning == body["reasoning"]


def test_trailing_commas_and_single_quotes():
    assert parse('{"label": "sad", "scores": {"sad": 0.7, "neutral": 0.3,},}').label == "sad"
    a = parse("{'label': 'happy', 'reasoning': 'it is fine', 'scores': {'happy': 0.9, 'neutral': 0.1}}")
    assert a.label == "happy" and a.scores[2] == pytest.approx(0.9)


def test_scores_are_normalised_and_bad_scores_dropped():
    a = parse('{"label": "angry", "scores": {"angry": 60, "sad": 20, "neutral": "20%", "happy": -5, "surprise": "n/a"}}')
    np.testing.assert_allclose(a.scores, [0.2, 0.6, 0.0, 0.2, 0.0, 0.0])
    assert {"scores_renormalised", "negative_score", "non_numeric_score"} <= set(a.notes)
    assert a.scores.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("label,expected", [
    ("Surprised", "surprise"), ("SURPRISE", "surprise"), ("惊讶", "surprise"),
    ("worry", "worried"), ("Anxious", "worried"), ("担忧", "worried"), ("焦虑", "worried"), ("担心", "worried"),
    ("anger", "angry"), ("生气", "angry"), ("愤怒", "angry"),
    ("happiness", "happy"), ("Joy", "happy"), ("开心", "happy"), ("高兴", "happy"),
    ("sadness", "sad"), ("悲伤", "sad"), ("难过", "sad"),
    ("中性", "neutral"), ("平静", "neutral"), ("calm", "neutral"), (" Neutral. ", "neutral"),
    ("sad (悲伤)", "sad"), (["happy"], "happy"),
])
def test_label_synonyms(label, expected):
    assert parse(json.dumps({"label": label})).label == expected


def test_score_key_synonyms_and_merging():
    a = parse('{"情绪": {"中性": 1, "Anger": 1, "开心": 2, "Sadness": 0, "担忧": 1, "焦虑": 1, "Surprised": 2}}')
    np.testing.assert_allclose(a.scores, np.array([1, 1, 2, 0, 2, 2]) / 8)


def test_unknown_score_keys_are_dropped():
    a = parse('{"label": "sad", "scores": {"sad": 0.5, "contempt": 0.5}}')
    np.testing.assert_allclose(a.scores, [0, 0, 0, 1, 0, 0])
    assert "unknown_score_key" in a.notes


def test_missing_label_is_argmax_and_missing_scores_one_hot():
    a = parse('{"推理过程": "...", "情绪": {"neutral": 0.1, "sad": 0.6, "worried": 0.3}}')
    assert a.label == "sad" and "label_from_scores" in a.notes
    a = parse('{"label": "", "scores": {"happy": 0.2, "surprise": 0.5}}')
    assert a.label == "surprise"
    b = parse('{"label": "happy", "reasoning": "smiles"}')
    np.testing.assert_array_equal(b.scores, np.eye(6)[2])
    assert "scores_from_label" in b.notes
    c = parse('{"label": "happy", "scores": {"happy": 0, "sad": 0}}')  # all-zero scores count as none
    np.testing.assert_array_equal(c.scores, np.eye(6)[2])


def test_label_that_disagrees_with_scores_is_kept_and_noted():
    a = parse('{"label": "happy", "scores": {"happy": 0.3, "sad": 0.7}}')
    assert a.label == "happy" and "label_disagrees_with_scores" in a.notes


def test_other_key_spellings_and_nesting():
    assert parse('{"emotion": "Sadness"}').label == "sad"
    assert parse('{"result": {"Label": "calm", "Reasoning": "flat"}}').label == "neutral"
    assert parse({"label": "angry"}).label == "angry"  # an already decoded answer (JSONL)


def test_truncated():
    text = json.dumps(ZH, ensure_ascii=False)
    for cut in (0.2, 0.5, 0.95):
        assert skip_reason("```json\n" + text[: int(len(text) * cut)]) == vlm.TRUNCATED


@pytest.mark.parametrize("text", ["I cannot determine the emotion.", "{label: sad, maybe}", "```json\n{\"label\" \"sad\"}\n```"])
def test_unparseable(text):
    assert skip_reason(text) == vlm.UNPARSEABLE


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_empty(text):
    assert skip_reason(text) == vlm.EMPTY


@pytest.mark.parametrize("label", ["contempt", "fear", "disgust", "happy/sad"])
def test_out_of_class_label(label):
    assert skip_reason(json.dumps(dict(ZH, label=label))) == vlm.OUT_OF_CLASS


def test_object_without_label_or_scores():
    assert skip_reason('{"推理过程": "无法判断", "贡献度": {"视频": 1}}') == vlm.NO_EMOTION


def test_other_class_lists():
    assert vlm.parse_answer('{"label": "Happiness"}', ["happy", "sad"]).label == "happy"
    assert vlm.normalize_label("worry", ["happy", "sad"]) is None


@pytest.mark.parametrize("prompt", ["prompt.txt", "prompt_zh.txt"])
def test_prompt_examples_parse(prompt):
    with open(os.path.join(REPO, prompt), encoding="utf-8") as f:
        text = f.read()
    example = text.split("\n\n")[-2].split("\n", 1)[1]  # the line after "Example answer:"
    a = parse(example)
    assert a.label == "worried" and a.scores.sum() == pytest.approx(1) and set(a.contribution) == {"video", "audio", "subtitle"}
    assert "<<SUBTITLE>>" in text


def test_parse_answers_counts_duplicates_and_expected():
    records = [("a", '{"label": "sad"}'), ("b", ""), ("a", "garbage"), ("c", '{"label": "x"}'),
               ("d", '{"label": "happy"}'), ("b", '{"label": "angry"}'), ("line 7", vlm.BAD_RECORD)]
    result = vlm.parse_answers(records, CLASSES, expected=["b", "a", "c", "e"])
    assert list(result.parsed) == ["b", "a"] and result.parsed["a"].label == "sad"  # a parsable answer wins
    assert result.skipped == {vlm.OUT_OF_CLASS: ["c"], vlm.UNREADABLE: ["line 7"], vlm.NO_ANSWER: ["e"]}
    assert result.not_expected == ["d"] and result.duplicates == 2 and result.read == 7
    assert result.label_counts(CLASSES)["sad"] == 1
