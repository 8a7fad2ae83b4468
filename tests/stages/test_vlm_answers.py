"""Every answer variant the VLM parser must read, repair or skip."""
import json
import os

import numpy as np
import pytest

from stages import vlm_answers

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OURS = {"scores": {"neutral": 0.05, "angry": 0.02, "happy": 0.01, "sad": 0.12, "worried": 0.75, "surprise": 0.05},
        "label": "worried", "reasoning": "frowns; hesitant voice", "contribution": {"video": 0.35, "audio": 0.25, "subtitle": 0.4}}
ZH = {"推理过程": "眉头微皱，语气迟疑，综合判断人物的情绪为担心。",
      "情绪": {"neutral": 0.1, "angry": 0.05, "happy": 0.05, "sad": 0.2, "worried": 0.5, "surprise": 0.1},
      "label": "worried", "贡献度": {"视频": 0.5, "音频": 0.3, "字幕": 0.2}}


def parse(text):
    return vlm_answers.parse_answer(text, CLASSES)


def skip_reason(text):
    with pytest.raises(vlm_answers.SkipAnswer) as err:
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
        assert skip_reason("```json\n" + text[: int(len(text) * cut)]) == vlm_answers.TRUNCATED


@pytest.mark.parametrize("text", ["I cannot determine the emotion.", "{label: sad, maybe}", "```json\n{\"label\" \"sad\"}\n```"])
def test_unparseable(text):
    assert skip_reason(text) == vlm_answers.UNPARSEABLE


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_empty(text):
    assert skip_reason(text) == vlm_answers.EMPTY


@pytest.mark.parametrize("label", ["contempt", "fear", "disgust", "happy/sad"])
def test_out_of_class_label(label):
    assert skip_reason(json.dumps(dict(ZH, label=label))) == vlm_answers.OUT_OF_CLASS


def test_object_without_label_or_scores():
    assert skip_reason('{"推理过程": "无法判断", "贡献度": {"视频": 1}}') == vlm_answers.NO_EMOTION


def test_other_class_lists():
    assert vlm_answers.parse_answer('{"label": "Happiness"}', ["happy", "sad"]).label == "happy"
    assert vlm_answers.normalize_label("worry", ["happy", "sad"]) is None


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
               ("d", '{"label": "happy"}'), ("b", '{"label": "angry"}'), ("line 7", vlm_answers.BAD_RECORD)]
    result = vlm_answers.parse_answers(records, CLASSES, expected=["b", "a", "c", "e"])
    assert list(result.parsed) == ["b", "a"] and result.parsed["a"].label == "sad"  # a parsable answer wins
    assert result.skipped == {vlm_answers.OUT_OF_CLASS: ["c"], vlm_answers.UNREADABLE: ["line 7"], vlm_answers.NO_ANSWER: ["e"]}
    assert result.not_expected == ["d"] and result.duplicates == 2 and result.read == 7
    assert result.label_counts(CLASSES)["sad"] == 1


# ----------------------------------------------------------------------------------------------------
# Hostile answers: bounded time, per-answer failures, sound scores
# ----------------------------------------------------------------------------------------------------
def timed_parse(text, limit=10.0):
    """parse_answer's Answer or SkipAnswer, asserting it came back within ``limit`` seconds: a linear scan of a
    megabyte takes a fraction of a second even on a loaded machine, a quadratic one would take hours."""
    import time
    start = time.perf_counter()
    try:
        result = parse(text)
    except vlm_answers.SkipAnswer as skip:
        result = skip
    assert time.perf_counter() - start < limit, f"took {time.perf_counter() - start:.2f} s"
    return result


@pytest.mark.parametrize("text,reason", [
    ("{" * 200_000, vlm_answers.TRUNCATED),  # every brace opens, none closes
    ('{"a":' * 150_000, vlm_answers.TRUNCATED),
    ("{'x" * 300_000, vlm_answers.TRUNCATED),  # strings opened by quotes inside braces that never close
    ("{a}" * 300_000, vlm_answers.UNPARSEABLE),  # many balanced spans, none JSON
    ("x" * 5_000_000, vlm_answers.TOO_LONG),
    ("{" * 5_000_000, vlm_answers.TOO_LONG),
])
def test_pathological_answers_finish_quickly(text, reason):
    assert timed_parse(text).reason == reason


def test_answer_after_a_megabyte_of_braces_is_found():
    text = "{" * (vlm_answers.MAX_ANSWER_CHARS - 100) + json.dumps({"label": "sad"})
    assert timed_parse(text).label == "sad"


def test_stray_brace_and_odd_quote_before_the_answer():
    assert parse('I\'d say {mostly "worried. ' + json.dumps(OURS)).label == "worried"


@pytest.mark.parametrize("text", [
    "[" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"label": "sad", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "{'label': 'sad', 'x': " + "[" * 5_000 + "]" * 5_000 + "}",
])
def test_deep_nesting_is_unparseable_not_a_crash(text):
    assert timed_parse(text).reason == vlm_answers.UNPARSEABLE


def test_deep_nesting_is_one_skipped_answer_in_a_batch():
    records = [("deep", "[" * 100_000), ("deeper", '{"a":' * 50_000 + "1" + "}" * 50_000), ("ok", '{"label": "sad"}')]
    result = vlm_answers.parse_answers(records, CLASSES)
    assert list(result.parsed) == ["ok"] and result.skipped == {vlm_answers.UNPARSEABLE: ["deep", "deeper"]}


def test_huge_scores_are_rescaled_not_zeroed():
    a = parse('{"scores": {"sad": 1e308, "happy": 1e308, "angry": 1e307}}')
    np.testing.assert_allclose(a.scores, [0, 1 / 21, 10 / 21, 10 / 21, 0, 0])
    assert np.isfinite(a.scores).all() and a.scores.sum() == pytest.approx(1)
    b = parse('{"scores": {"anger": 1e308, "angry": 1e308, "sad": 1e308}}')  # merged synonyms overflow no sum
    np.testing.assert_allclose(b.scores, [0, 2 / 3, 0, 1 / 3, 0, 0])
    assert b.label == "angry"
    c = parse('{"scores": {"sad": 1e-320, "happy": 0}}')  # subnormal
    assert c.label == "sad" and c.scores[3] == 1.0


def test_tied_label_is_not_a_disagreement():
    a = parse('{"label": "sad", "scores": {"happy": 1e308, "sad": 1e308}}')
    assert a.label == "sad" and "label_disagrees_with_scores" not in a.notes


@pytest.mark.parametrize("scores", [
    '{"sad": Infinity, "happy": 1}', '{"sad": NaN, "happy": 1}', '{"sad": -Infinity, "happy": 1}',
    '{"sad": 1e999, "happy": 1}', '{"sad": "inf", "happy": 1}', '{"sad": "nan", "happy": 1}',
    '{"sad": 1' + "0" * 400 + ', "happy": 1}',  # an integer beyond the float range
])
def test_non_finite_score_skips_the_answer(scores):
    with pytest.raises(vlm_answers.SkipAnswer) as err:
        parse('{"label": "happy", "scores": ' + scores + "}")
    assert err.value.reason == vlm_answers.NON_FINITE and "sad" in str(err.value)


def test_negative_scores_are_clipped_and_all_negative_is_no_score():
    a = parse('{"scores": {"sad": -1e308, "happy": 2}}')
    assert a.label == "happy" and "negative_score" in a.notes
    assert skip_reason('{"scores": {"sad": -1, "happy": -2}}') == vlm_answers.NO_EMOTION  # no label is invented
    b = parse('{"label": "sad", "scores": {"sad": -1, "happy": -2}}')
    np.testing.assert_array_equal(b.scores, np.eye(6)[3])


def test_huge_or_non_finite_contribution():
    assert parse('{"label": "sad", "contribution": {"video": 1e308, "audio": 1e308}}').contribution == {"video": 0.5, "audio": 0.5}
    assert parse('{"label": "sad", "contribution": {"video": Infinity, "audio": 1}}').contribution == {}


def test_read_answers_folder_rejects_non_utf8_and_dangling_files(tmp_path):
    from toolkit.errors import UserError
    (tmp_path / "a.txt").write_text('{"label": "sad"}', encoding="utf-8")
    (tmp_path / "b.txt").write_bytes('{"label": "伤心"}'.encode("gbk"))
    with pytest.raises(UserError, match=r"b\.txt is not UTF-8 text \(byte 0x.. on line 1\)"):
        vlm_answers.read_answers(str(tmp_path))
    (tmp_path / "b.txt").unlink()
    os.symlink(tmp_path / "gone", tmp_path / "c.txt")
    with pytest.raises(UserError, match=r"cannot read answer file .*c\.txt"):
        vlm_answers.read_answers(str(tmp_path))
    (tmp_path / "c.txt").unlink()
    (tmp_path / "d.json").mkdir()  # a folder named like an answer is not one
    assert vlm_answers.read_answers(str(tmp_path)) == [("a", '{"label": "sad"}')]


def test_jsonl_deep_lines_and_bad_names_are_unreadable_records(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(["[" * 100_000, json.dumps({"name": "", "answer": "x"}), json.dumps({"name": "a\u0000b", "answer": "x"}),
                               json.dumps({"name": "\ud800", "answer": "x"}), json.dumps({"name": "ok", "answer": '{"label": "sad"}'})]))
    records = vlm_answers.read_answers(str(path))
    assert [n for n, r in records if r is vlm_answers.BAD_RECORD] == ["line 1", "line 2", "line 3", "line 4"]
    assert records[-1] == ("ok", '{"label": "sad"}')
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(Exception, match="no line is a JSON object"):
        vlm_answers.read_answers(str(deep))
