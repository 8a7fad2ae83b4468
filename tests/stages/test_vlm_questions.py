"""describe.py: answers from an OpenAI-compatible endpoint (a real HTTP server on 127.0.0.1 that fails on
purpose) and from tiny random local chat models, in the folder form parse_vlm_answers.py reads."""
import csv
import json
import os
import socket

import numpy as np
import pytest

import describe
from benchmarks.chat_server import ChatServer
from preprocess import parse_vlm_answers
from stages import vlm_answers
from stages.vlm_questions import question_text
from tests.bad_inputs.helpers import assert_one_line_error
from tests.feature_extraction.media import write_release

KEY = "sk-test-9f8e7d6c5b4a"
NAMES = ["c0", "c1", "c2", "c3", "c4", "c5"]  # c3 has no audio stream, c5 is not a video


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(str(tmp_path_factory.mktemp("release")), NAMES, audio_less=("c3",), broken=("c5",))


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory):
    from preprocess.make_demo_encoders import build_encoder

    root = tmp_path_factory.mktemp("chat_models")
    return {kind: build_encoder(kind, str(root / kind), hidden=16, layers=1) for kind in ("llava", "qwen2-audio", "bert")}


@pytest.fixture
def server():
    servers = []

    def start(**kwargs):
        servers.append(ChatServer(**kwargs).start())
        return servers[-1]

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def run(argv, capsys):
    code = 0
    try:
        describe.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def failures(out):
    with open(os.path.join(out, "describe.failed.csv"), encoding="utf-8") as f:
        return {row["name"]: row["reason"] for row in csv.DictReader(f)}


def files_text(root):
    """Every file under ``root`` as bytes, joined (to look for a secret)."""
    blobs = []
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                blobs.append(f.read())
    return b"\n".join(blobs)


def endpoint_args(release, out, base, *extra):
    return ["--data", release, "--out", out, "--api_base", base, "--model", "canned", "--api_key_env", "DESCRIBE_TEST_KEY",
            "--frames", "3", "--send_audio", "--timeout", "0.5", "--retries", "1", "--backoff", "0.01", "--no_progress", *extra]


def test_endpoint_retries_lists_failures_resumes_and_keeps_the_key_secret(release, tmp_path, server, capsys, monkeypatch):
    monkeypatch.setenv("DESCRIBE_TEST_KEY", KEY)
    script = {"句子1": ["429", "ok"], "句子2": ["500", "ok"], "句子3": ["slow"], "句子4": ["malformed"]}
    first = server(script=script, slow_s=1.5)
    out = str(tmp_path / "answers")
    code, stdout, stderr = run(endpoint_args(release, out, first.base), capsys)
    assert code == 0, stderr
    assert sorted(os.listdir(out)) == ["c0.txt", "c1.txt", "c2.txt", "describe.failed.csv", "describe.jsonl", "describe.summary.json"]
    failed = failures(out)
    assert set(failed) == {"c3", "c4", "c5"}
    assert "no answer within --timeout 0.5 s (after 2 attempts)" in failed["c3"]
    assert "malformed response" in failed["c4"] and "unreadable file c5.mp4" in failed["c5"]
    per_clip = {}
    for marker, action, auth, kinds in first.log:
        per_clip.setdefault(marker, []).append(action)
        assert auth == f"Bearer {KEY}" and kinds.count("image_url") == 3 and kinds[-1] == "text"
        assert ("input_audio" in kinds) == (marker != "句子3")  # c3 has no audio stream: frames and subtitle only
    assert per_clip == {None: ["ok"], "句子1": ["429", "ok"], "句子2": ["500", "ok"], "句子3": ["slow", "slow"], "句子4": ["malformed"]}
    summary = json.load(open(os.path.join(out, "describe.summary.json"), encoding="utf-8"))
    records = [json.loads(line) for line in open(os.path.join(out, "describe.jsonl"), encoding="utf-8")]
    assert summary["requests"] == len(first.log) == 8 and summary["retries"] == 3 and summary["answered"] == 3
    assert summary["tokens"]["prompt"] == sum(r["prompt_tokens"] for r in records) > 0
    assert f"8 requests (3 retries); tokens {summary['tokens']['prompt']} prompt" in stdout
    assert {r["name"]: r["attempts"] for r in records} == {"c0": 1, "c1": 2, "c2": 2}
    assert all(r["inputs"][0] == "3 frames" and r["inputs"][1].startswith("audio ") for r in records)

    # a second run asks only the clips that failed; a third asks nothing
    second = server(script={"句子3": ["ok"], "句子4": ["ok"]})
    code, stdout, _ = run(endpoint_args(release, out, second.base), capsys)
    assert code == 0 and sorted(m for m, *_ in second.log) == ["句子3", "句子4"]
    assert set(failures(out)) == {"c5"}
    third = server()
    code, stdout, _ = run(endpoint_args(release, out, third.base), capsys)
    assert code == 0 and third.log == [] and "0 clips answered" in stdout and "5 answered before" in stdout

    parsed = str(tmp_path / "vlm.csv")
    summary = parse_vlm_answers.main(["--answers", out, "--out", parsed])
    assert summary["parsed"] == 5 and summary["read"] == 5  # describe's own files are not read as answers
    for text in (stdout, stderr, capsys.readouterr().out):
        assert KEY not in text
    assert KEY.encode() not in files_text(str(tmp_path))


def test_a_refused_key_stops_the_run_in_one_line_without_the_key(release, tmp_path, server, capsys, monkeypatch):
    monkeypatch.setenv("DESCRIBE_TEST_KEY", KEY)
    refusing = server(script={"": ["401"]})  # the server echoes the key in its message; it must not reach the user
    out = str(tmp_path / "answers")
    code, _, err = run(endpoint_args(release, out, refusing.base), capsys)
    assert_one_line_error(code, err, "HTTP 401", "$DESCRIBE_TEST_KEY")
    assert KEY not in err and KEY.encode() not in files_text(out)


def test_an_unreachable_server_is_one_line(release, tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(endpoint_args(release, str(tmp_path / "a"), f"http://127.0.0.1:{port}/v1"), capsys)
    assert_one_line_error(code, err, "cannot reach --api_base", str(port))


@pytest.mark.parametrize("kind, sees", [("llava", "frames"), ("qwen2-audio", "audio")])
def test_local_chat_models_answer_through_their_processor(kind, sees, release, chat_models, tmp_path, capsys):
    out, features = str(tmp_path / "answers"), str(tmp_path / "features")
    argv = ["--data", release, "--out", out, "--model", chat_models[kind], "--frames", "2", "--max_tokens", "6",
            "--no_progress", "--embed_model", chat_models["bert"], "--embed_out", features, "--embed_name", "vlm-desc"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert f"sees {sees} and the subtitle" in stdout
    assert set(failures(out)) == {"c5"}
    records = {r["name"]: r for r in map(json.loads, open(os.path.join(out, "describe.jsonl"), encoding="utf-8"))}
    assert sorted(records) == ["c0", "c1", "c2", "c3", "c4"]
    assert all(r["completion_tokens"] <= 6 for r in records.values())
    seen = records["c0"]["inputs"]
    assert seen == (["2 frames", "subtitle"] if kind == "llava" else ["audio 1.0 s", "subtitle"])
    if kind == "qwen2-audio":
        assert records["c3"]["inputs"] == ["subtitle"]  # no audio stream: the subtitle alone
    vectors = sorted(os.listdir(os.path.join(features, "vlm-desc-UTT")))
    assert vectors == [f"c{i}.npy" for i in range(5)]
    assert np.load(os.path.join(features, "vlm-desc-UTT", "c0.npy")).shape == (16,)

    answers = {n: open(os.path.join(out, f"{n}.txt"), encoding="utf-8").read() for n in records}
    code, stdout, _ = run(argv[:-6], capsys)  # resume: nothing is generated again
    assert code == 0 and "0 generations" in stdout and "5 answered before" in stdout
    assert answers == {n: open(os.path.join(out, f"{n}.txt"), encoding="utf-8").read() for n in records}
    # random weights answer gibberish: each answer is a per-clip skip, and the parse script says so in one line
    result = vlm_answers.parse_answers(vlm_answers.read_answers(out), ["neutral", "angry", "happy", "sad", "worried", "surprise"])
    assert result.parsed == {} and sum(len(v) for v in result.skipped.values()) == 5
    try:
        parse_vlm_answers.main(["--answers", out, "--out", str(tmp_path / "vlm.csv")])
        code = 0
    except SystemExit as exc:
        code = exc.code
    assert_one_line_error(code, capsys.readouterr().err, "no usable answer among the 5")


def test_the_subtitle_goes_where_the_prompt_says():
    assert question_text("Judge.\nSubtitle: <<SUBTITLE>>\n", "我很好") == "Judge.\nSubtitle: 我很好\n"
    assert question_text("Judge the clip.", "hi") == "Judge the clip.\n\nSubtitle: hi"
    zh = open(os.path.join(os.path.dirname(describe.__file__), "prompt_zh.txt"), encoding="utf-8").read()
    assert question_text(zh, "你好").rstrip().endswith("字幕：你好")


def test_a_local_model_that_is_not_a_chat_model_is_refused(release, chat_models, tmp_path, capsys):
    code, _, err = run(["--data", release, "--out", str(tmp_path / "a"), "--model", chat_models["bert"]], capsys)
    assert_one_line_error(code, err, "is a bert model", "--api_base")


def test_retry_after_is_waited_for(server):
    import time

    from stages.vlm_questions import Question
    from stages.vlm_endpoint import ChatEndpoint, retry_after

    limited = server(script={"句子0": ["429", "ok"]}, retry_after="0.4")
    endpoint = ChatEndpoint(limited.base, "canned", key_env="DESCRIBE_UNSET_KEY", timeout=5, retries=2, backoff=0.01)
    started = time.perf_counter()
    reply = endpoint.ask(Question("c0", "Subtitle: 句子0", frames=[np.zeros((8, 8, 3), np.uint8)]))
    assert time.perf_counter() - started >= 0.4 and reply.attempts == 2 and '"label"' in reply.text
    assert [entry[2] for entry in limited.log] == [None, None]  # no key in the environment: no Authorization header
    assert retry_after("2.5") == 2.5 and retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and retry_after("soon") is None
