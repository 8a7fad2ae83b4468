"""A small OpenAI-compatible chat-completions server on 127.0.0.1 that answers every question with canned
JSON in prompt.txt's schema, to try and time describe.py without a model (and to test it).

    python benchmarks/chat_server.py --port 8011 &
    python describe.py --data data/demo_clips --out /tmp/answers --api_base http://127.0.0.1:8011/v1 --model canned

The label of an answer follows the subtitle (a word of the six classes in it, else a hash of it), so
parse_vlm_answers.py parses every answer. ``--fail_every N`` answers every N-th request with a 500 (then
the retry succeeds); ``script`` (in Python) makes chosen clips get a 429, a 500, a slow or a malformed answer.
Usage tokens are counted as in the API: prompt = characters of the text / 4 + 85 per image, completion =
characters of the answer / 4."""
import argparse
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLASSES = ("neutral", "angry", "happy", "sad", "worried", "surprise")


def canned_answer(text):
    """An answer in prompt.txt's schema whose label depends on the question's subtitle only."""
    subtitle = text.rsplit("Subtitle:", 1)[-1] if "Subtitle:" in text else text[-200:]
    label = next((c for c in CLASSES if c in subtitle.lower()), None)
    label = label or CLASSES[int(hashlib.sha1(subtitle.encode("utf-8")).hexdigest(), 16) % len(CLASSES)]
    scores = {c: (0.75 if c == label else 0.05) for c in CLASSES}
    return json.dumps({"scores": scores, "label": label, "reasoning": f"the subtitle reads as {label}",
                       "contribution": {"video": 0.3, "audio": 0.2, "subtitle": 0.5}})


class ChatServer(ThreadingHTTPServer):
    """``script``: {marker: [action, ...]}: a request whose text holds ``marker`` takes the next action of its
    list (the last one repeats): "ok", "429", "500", "slow", "malformed" or "401". Every request is logged in
    ``log`` as (marker or None, action, Authorization header, parts) under ``lock``."""

    daemon_threads = True

    def __init__(self, port=0, script=None, fail_every=0, slow_s=2.0, retry_after="0"):
        super().__init__(("127.0.0.1", port), Handler)
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.fail_every, self.slow_s, self.retry_after = fail_every, slow_s, retry_after
        self.log, self.lock = [], threading.Lock()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def action(self, text):
        with self.lock:
            marker = next((m for m in self.script if m in text), None)
            if marker is not None:
                actions = self.script[marker]
                action = actions.pop(0) if len(actions) > 1 else actions[0]
            else:
                action = "500" if self.fail_every and (len(self.log) + 1) % self.fail_every == 0 else "ok"
            return marker, action

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def send(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send(200, {"object": "list", "data": [{"id": "canned", "object": "model"}]})

    def do_POST(self):
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            parts = request["messages"][-1]["content"]
            parts = [{"type": "text", "text": parts}] if isinstance(parts, str) else parts
        except (ValueError, KeyError, IndexError, TypeError):
            return self.send(400, {"error": {"message": "request is not a chat-completions body"}})
        text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        kinds = [p.get("type") for p in parts]
        marker, action = self.server.action(text)
        with self.server.lock:
            self.server.log.append((marker, action, self.headers.get("Authorization"), kinds))
        if action == "slow":
            time.sleep(self.server.slow_s)
        if action in ("429", "500", "401"):
            message = {"429": "rate limited", "500": "internal error",
                       "401": f"incorrect API key provided: {self.headers.get('Authorization')}"}[action]  # as some servers do
            extra = [("Retry-After", self.server.retry_after)] if action == "429" else []
            return self.send(int(action), {"error": {"message": message}}, extra)
        if action == "malformed":
            return self.send(200, b'{"choices": [{"mess')
        answer = canned_answer(text)
        usage = {"prompt_tokens": len(text) // 4 + 85 * kinds.count("image_url"), "completion_tokens": len(answer) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.send(200, {"id": "chatcmpl-canned", "object": "chat.completion", "model": request.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                        "usage": usage})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8011, help="port on 127.0.0.1 (default: 8011)")
    parser.add_argument("--fail_every", type=int, default=0, help="answer every N-th request with a 500 (default: 0, never)")
    args = parser.parse_args(argv)
    server = ChatServer(args.port, fail_every=args.fail_every)
    print(f"serving canned answers at {server.base} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(f"{len(server.log)} requests served", file=sys.stderr)


if __name__ == "__main__":
    main()
