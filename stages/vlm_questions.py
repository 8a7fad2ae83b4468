"""Ask a VLM about every clip (prompt.txt, or another prompt file) and keep its raw answers as
``<out>/<name>.txt``: the folder form that ``preprocess/parse_vlm_answers.py --answers <out>`` reads.

Backends: an OpenAI-compatible chat endpoint (``stages.vlm_endpoint``) or a local transformers model
(``stages.vlm_local``). Each clip becomes one question: a few frames spread over the clip, the audio
track where the backend takes it, and the prompt with the clip's subtitle in place of ``<<SUBTITLE>>``.

Beside the answers: ``<out>/describe.jsonl`` (per answered clip: the inputs the model saw, tokens, attempts,
finish reason), ``<out>/describe.failed.csv`` (clips without an answer and why) and
``<out>/describe.summary.json`` (the run: backend, counts, requests, tokens, seconds). Clips answered already
are not asked again (delete an answer, or pass ``overwrite``, to ask anew); every answer is written under a temporary name and renamed.
With ``embed_model`` the answers then go through a text encoder into a feature folder (``-UTT``), as
``extract.py --modality text`` does with subtitles."""
import collections
import concurrent.futures as futures
import dataclasses
import json
import os
import time

from feature_extraction import decode
from feature_extraction.base import Clip, ClipError
from feature_extraction.runner import write_failures
from stages.vlm_answers import NOT_ANSWERS
from toolkit.errors import UserError
from toolkit.io import remove_stale_temps, resolve, save_json, save_text

PLACEHOLDER = "<<SUBTITLE>>"
LOG = "describe.jsonl"
FAILED = "describe.failed.csv"
SHOW_FAILED = 5


@dataclasses.dataclass
class DescribeConfig:
    """One describe run; ``describe.py`` builds it from its flags (their help says what each field does)."""

    data: str
    out: str
    model: str
    names: tuple = ()
    prompt: str = "prompt.txt"
    api_base: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    frames: int = 4
    image_size: int = 448
    send_audio: bool = False
    max_audio_s: float = 30.0
    subtitles: str | None = None
    lang: str = "chinese"
    max_tokens: int = 1024
    temperature: float = 0.0
    concurrency: int = 4
    timeout: float = 120.0
    retries: int = 5
    backoff: float = 1.0
    device: str = "auto"
    dtype: str = "auto"
    overwrite: bool = False
    progress: bool = True
    embed_model: str | None = None
    embed_out: str | None = None
    embed_name: str | None = None


@dataclasses.dataclass
class Question:
    """What the model is shown about one clip; ``inputs`` says it in words, for the record."""

    name: str
    text: str
    frames: list
    audio: object = None
    inputs: list = dataclasses.field(default_factory=list)


def read_prompt(path):
    """The prompt template (a path as given, else relative to the project, where prompt.txt lives)."""
    found = path if os.path.isfile(path) else resolve(path)
    if not os.path.isfile(found):
        raise UserError(f"--prompt {path} not found; pass a prompt file such as prompt.txt or prompt_zh.txt")
    try:
        with open(found, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --prompt {path} ({getattr(exc, 'strerror', None) or exc}); save it as UTF-8 text") from None
    if not text.strip():
        raise UserError(f"--prompt {path} is empty")
    return text


def question_text(template, subtitle):
    """The prompt with the subtitle in place of <<SUBTITLE>> (appended when the prompt has no such place)."""
    subtitle = subtitle or ""
    return template.replace(PLACEHOLDER, subtitle) if PLACEHOLDER in template else f"{template.rstrip()}\n\nSubtitle: {subtitle}"


def prepare(clip, template, takes, cfg):
    """Decode what ``takes`` (frames, audio) asks of ``clip`` into a Question; a stream the clip lacks is left out."""
    frames, audio, inputs = [], None, []
    if "frames" in takes and clip.video:
        try:
            frames = list(decode.sample_frames(clip.video, cfg.frames))
            inputs.append(f"{len(frames)} frames")
        except decode.NoStream:
            pass
    source = clip.audio or clip.video
    if "audio" in takes and source:
        try:
            audio = decode.read_audio(source)[:int(cfg.max_audio_s * decode.SAMPLE_RATE)]
            inputs.append(f"audio {len(audio) / decode.SAMPLE_RATE:.1f} s")
        except decode.NoStream:
            pass
    if clip.text:
        inputs.append("subtitle")
    if not frames and audio is None and not clip.text:
        wanted = " or ".join(sorted({"frames": "video", "audio": "audio"}[k] for k in takes))
        raise ClipError(f"nothing to show the model: no {wanted} and no subtitle")
    return Question(clip.name, question_text(template, clip.text), frames, audio, inputs)


def answer_path(out, name):
    return os.path.join(out, f"{name}.txt")


def summary_path(out):
    """``<out>/describe.summary.json`` (parse_vlm_answers skips it when it reads the folder)."""
    return os.path.join(out, next(iter(NOT_ANSWERS)))


@dataclasses.dataclass
class Report:
    total: int = 0
    answered: int = 0
    existing: int = 0
    failed: dict = dataclasses.field(default_factory=dict)
    inputs: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cut_short: int = 0  # answers that stopped at --max_tokens
    seconds: float = 0.0

    def line(self, backend):
        rate = self.answered / self.seconds if self.seconds else 0.0
        asks = "requests" if backend.kind == "api" else "generations"
        text = (f"describe: {self.answered} clips answered in {self.seconds:.1f} s ({rate:.2f} clips/s), {self.existing} "
                f"answered before, {len(self.failed)} failed; {backend.requests} {asks} ({backend.retried} retries); "
                f"tokens {self.prompt_tokens} prompt + {self.completion_tokens} completion = "
                f"{self.prompt_tokens + self.completion_tokens}")
        if self.cut_short:
            text += f"\n  {self.cut_short} answers stopped at --max_tokens (raise it if they are cut mid-JSON)"
        if self.failed:
            shown = "; ".join(f"{n}: {r}" for n, r in list(self.failed.items())[:SHOW_FAILED])
            text += f"\n  failed: {shown}" + (" ..." if len(self.failed) > SHOW_FAILED else "")
        return text


def _failure(exc):
    if isinstance(exc, ClipError):
        return str(exc)
    first = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{exc.__class__.__name__}: {first}"


def _work(backend, clip, template, cfg):
    question = prepare(clip, template, backend.takes, cfg)
    return question, (backend.ask(question) if backend.asks_in_workers else None)


def _keep(out, log, report, question, reply, started):
    """Write one answer (atomically) and its record."""
    save_text(answer_path(out, question.name), reply.text)
    report.answered += 1
    report.prompt_tokens += reply.prompt_tokens
    report.completion_tokens += reply.completion_tokens
    report.cut_short += reply.finish_reason == "length"
    report.inputs[", ".join(question.inputs)] += 1
    log.write(json.dumps({"name": question.name, "inputs": question.inputs, "prompt_tokens": reply.prompt_tokens,
                          "completion_tokens": reply.completion_tokens, "finish_reason": reply.finish_reason,
                          "attempts": reply.attempts, "seconds": round(time.perf_counter() - started, 3)},
                         ensure_ascii=False) + "\n")
    log.flush()


def answer_clips(backend, todo, template, cfg, report):
    """Ask about every clip of ``todo``: workers decode (and, for an endpoint, ask) ahead, the main thread writes."""
    from tqdm import tqdm

    pool = futures.ThreadPoolExecutor(max_workers=backend.workers)
    clips, running, bar = iter(todo), {}, tqdm(total=len(todo), unit="clip", desc="describe", disable=not cfg.progress or not todo)

    def submit():
        clip = next(clips, None)
        if clip is not None:
            running[pool.submit(_work, backend, clip, template, cfg)] = (clip, time.perf_counter())

    try:
        with open(os.path.join(cfg.out, LOG), "a", encoding="utf-8") as log:
            for _ in range(2 * backend.workers):
                submit()
            while running:
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    clip, started = running.pop(future)
                    try:
                        question, reply = future.result()
                        _keep(cfg.out, log, report, question, reply or backend.ask(question), started)
                    except (ClipError, OSError, ValueError, RuntimeError) as exc:
                        report.failed[clip.name] = _failure(exc)
                    bar.update(1)
                    submit()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()


def build_backend(cfg):
    if cfg.api_base:
        from stages.vlm_endpoint import ChatEndpoint

        return ChatEndpoint(cfg.api_base, cfg.model, cfg.api_key_env, cfg.send_audio, cfg.image_size, cfg.max_tokens,
                            cfg.temperature, cfg.timeout, cfg.retries, cfg.backoff, cfg.concurrency)
    from stages.vlm_local import LocalModel
    from toolkit.device import pick_device

    return LocalModel(cfg.model, pick_device(cfg.device), cfg.dtype, cfg.max_tokens)


def find_questions(cfg):
    """The clips of the release (with their subtitles when the subtitle CSV exists)."""
    from feature_extraction.release import find_clips

    subtitles = cfg.subtitles or os.path.join(cfg.data, "subtitle_chieng.csv")
    if cfg.subtitles and not os.path.isfile(cfg.subtitles):
        raise UserError(f"--subtitles {cfg.subtitles} not found; pass the subtitle CSV (name, chinese, english)")
    return find_clips(cfg.data, cfg.names, subtitles=subtitles if os.path.isfile(subtitles) else None, lang=cfg.lang)


def embed_answers(cfg, clips):
    """The answers through a text encoder into ``<embed_out>/<embed_name>-UTT/<clip>.npy`` (extract.py's loop)."""
    from feature_extraction import encoders, runner
    from toolkit.device import pick_device

    answered = []
    for clip in clips:
        path = answer_path(cfg.out, clip.name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                answered.append(Clip(name=clip.name, text=f.read()))
    name = cfg.embed_name or f"{os.path.basename(os.path.normpath(cfg.out))}-{os.path.basename(os.path.normpath(cfg.embed_model))}"
    out = cfg.embed_out or os.path.join(cfg.data, "features")
    extractor = encoders.TextEncoder(cfg.embed_model, device=pick_device(cfg.device), dtype=cfg.dtype, name=name)
    print(f"{extractor.describe()}: {len(answered)} answers → {os.path.join(out, name + '-UTT')}", flush=True)
    report = runner.extract(extractor, answered, out, runner.Inputs(), overwrite=cfg.overwrite, workers=0, progress=cfg.progress)
    failures = os.path.join(out, f"extract-{name}.failed.csv")
    write_failures(failures, report.failed)
    print(report.summary(name))
    return {"feature": f"{name}-UTT", "dir": os.path.join(out, f"{name}-UTT"), "written": report.done,
            "existing": report.existing, "failed": len(report.failed)}


def run(cfg):
    """Answer every clip (see the module doc); returns the summary dict also written to ``<out>/describe.summary.json``."""
    template = read_prompt(cfg.prompt)
    if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
        raise UserError(f"--out {cfg.out} is a file; pass a folder for the answers")
    clips = find_questions(cfg)
    backend = build_backend(cfg)
    os.makedirs(cfg.out, exist_ok=True)
    remove_stale_temps(cfg.out)
    report = Report(total=len(clips))
    todo = [c for c in clips if cfg.overwrite or not os.path.isfile(answer_path(cfg.out, c.name))]
    report.existing = len(clips) - len(todo)
    print(f"describe {len(clips)} clips ({report.existing} answered before) with {backend.describe()} → {cfg.out}", flush=True)
    started = time.perf_counter()
    try:
        answer_clips(backend, todo, template, cfg, report)
    finally:
        report.seconds = time.perf_counter() - started
        summary = write_records(cfg, backend, report)
    print(report.line(backend) + (f"\n  all failures: {os.path.join(cfg.out, FAILED)}" if report.failed else ""))
    if report.failed and not report.answered and not report.existing:
        raise UserError(f"no clip was answered ({len(report.failed)} failed, first: {next(iter(report.failed.values()))}); "
                        f"see {os.path.join(cfg.out, FAILED)}")
    if cfg.embed_model:
        summary["embedding"] = embed_answers(cfg, clips)
        save_json(summary_path(cfg.out), summary)
    print(f"next: python preprocess/parse_vlm_answers.py --answers {cfg.out} --out {os.path.normpath(cfg.out)}.csv")
    return summary


def write_records(cfg, backend, report):
    write_failures(os.path.join(cfg.out, FAILED), report.failed)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress",)}
    summary = {"backend": backend.kind, "model": backend.name, "sees": sorted(backend.takes) + ["subtitle"],
               "clips": report.total, "answered": report.answered, "answered_before": report.existing,
               "failed": len(report.failed), "failed_list": os.path.join(cfg.out, FAILED) if report.failed else None,
               "requests": backend.requests, "retries": backend.retried,
               "tokens": {"prompt": report.prompt_tokens, "completion": report.completion_tokens,
                          "total": report.prompt_tokens + report.completion_tokens},
               "cut_short": report.cut_short, "inputs": dict(report.inputs.most_common()),
               "seconds": round(report.seconds, 3), "settings": settings}
    save_json(summary_path(cfg.out), summary)
    return summary
