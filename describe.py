"""Ask a VLM about every clip with prompt.txt and keep its raw answers, ready for parse_vlm_answers.py.

    # an OpenAI-compatible server (vLLM: vllm serve Qwen/Qwen2.5-Omni-7B --port 8000), or a provider's endpoint
    OPENAI_API_KEY=... python describe.py --data DATA --out DATA/vlm_answers \\
        --api_base http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-Omni-7B --send_audio --concurrency 8
    # a local transformers model (a folder; never downloaded)
    python describe.py --data DATA --out DATA/vlm_answers --model models/Qwen2-Audio-7B-Instruct
    # then: labels and scores, and the answers' text embedding as a feature, in one command each
    python preprocess/parse_vlm_answers.py --answers DATA/vlm_answers --out DATA/vlm.csv
    python describe.py --data DATA --out DATA/vlm_answers --api_base ... --model ... \\
        --embed_model models/chinese-roberta-wwm-ext          # writes DATA/features/vlm_answers-chinese-roberta-wwm-ext-UTT

Each clip is one question: --frames frames spread over the video (JPEG images for a server; the processor's
images for a local model), the audio track (a WAV input_audio part with --send_audio; a local model gets it
when its processor takes audio), and the prompt with the clip's subtitle in place of <<SUBTITLE>>. What the
model saw is recorded per clip in OUT/describe.jsonl. Answers are OUT/<name>.txt, written atomically; clips
answered before are not asked again. Clips without an answer are listed in OUT/describe.failed.csv (run again to
retry them). Requests, tokens and seconds are printed and kept in OUT/describe.summary.json. The key is read from the
environment variable --api_key_env and never written anywhere.
"""
import dataclasses
import os

from stages.vlm_questions import DescribeConfig, run
from toolkit.errors import ArgumentParser, UserError, bounded, cli

DEFAULTS = {f.name: f.default for f in dataclasses.fields(DescribeConfig) if f.default is not dataclasses.MISSING}


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="release folder (video/, audio/, subtitle_chieng.csv)")
    p.add_argument("--names", nargs="+", metavar="CSV", default=(), help="only the clips of these CSVs (column name); "
                   "default: every clip in video/ (or audio/)")
    p.add_argument("--out", required=True, help="answer folder: <name>.txt per clip, describe.jsonl, describe.failed.csv, describe.summary.json")
    p.add_argument("--prompt", help="prompt file; <<SUBTITLE>> is replaced by the clip's subtitle (e.g. prompt_zh.txt)")
    p.add_argument("--model", required=True, help="with --api_base: the model name the server serves; without: a local "
                   "transformers checkpoint folder (a video/audio LLM, e.g. Qwen2.5-Omni, Qwen2.5-VL, Qwen2-Audio)")
    api = p.add_argument_group("OpenAI-compatible endpoint")
    api.add_argument("--api_base", help="base URL of a chat-completions server, e.g. http://127.0.0.1:8000/v1 "
                     "(default: none, a local --model)")
    api.add_argument("--api_key_env", help="environment variable holding the API key (none set: no Authorization header)")
    api.add_argument("--send_audio", action="store_true", help="also send the audio as an input_audio part (servers of "
                     "audio-capable models such as Qwen2.5-Omni or gpt-4o-audio)")
    api.add_argument("--image_size", type=bounded(int, 32), help="longer side of the JPEG frames sent, in pixels")
    api.add_argument("--concurrency", type=bounded(int, 1), help="requests in flight at once")
    api.add_argument("--timeout", type=bounded(float, 0.0, low_open=True), help="seconds to wait for one answer")
    api.add_argument("--retries", type=bounded(int, 0), help="retries of a request after a 429, a 5xx, a timeout or a dropped connection")
    api.add_argument("--backoff", type=bounded(float, 0.0), help="first wait before a retry, in seconds, doubled each "
                     "time (a longer Retry-After from the server wins)")
    inputs = p.add_argument_group("inputs and generation")
    inputs.add_argument("--frames", type=bounded(int, 1), help="frames spread evenly over the clip")
    inputs.add_argument("--max_audio_s", type=bounded(float, 1.0), help="audio sent: at most this many seconds from the start")
    inputs.add_argument("--subtitles", help="subtitle CSV (name, chinese, english) (default: DATA/subtitle_chieng.csv when present)")
    inputs.add_argument("--lang", choices=["chinese", "english"], help="subtitle column")
    inputs.add_argument("--max_tokens", type=bounded(int, 1), help="longest answer, in tokens")
    inputs.add_argument("--temperature", type=bounded(float, 0.0), help="sampling temperature sent to a server "
                        "(a local model always decodes greedily)")
    local = p.add_argument_group("local model")
    local.add_argument("--device", help="auto, cpu or cuda")
    local.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], help="auto: float16 on GPU, float32 on CPU")
    embed = p.add_argument_group("answers as a feature")
    embed.add_argument("--embed_model", help="text encoder folder: embed the answers into a -UTT feature folder after "
                       "answering (default: none, no embedding)")
    embed.add_argument("--embed_out", help="features root for --embed_model (default: DATA/features)")
    embed.add_argument("--embed_name", help="feature name for --embed_model (default: <out folder>-<encoder folder>)")
    run = p.add_argument_group("run")
    run.add_argument("--overwrite", action="store_true", help="ask again about clips answered before")
    run.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(**DEFAULTS)
    return p.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    if args.api_base is None and not (os.path.isdir(args.model) or "/" in args.model):
        raise UserError(f"--model {args.model}: without --api_base this is a local checkpoint folder, and there is no "
                        f"such folder; pass --api_base URL to ask a server for the model {args.model!r}")
    fields = {f.name for f in dataclasses.fields(DescribeConfig)} - {"progress", "names"}
    cfg = DescribeConfig(**{k: v for k, v in vars(args).items() if k in fields}, names=tuple(args.names),
                         progress=not args.no_progress)
    return run(cfg)


if __name__ == "__main__":
    main()
