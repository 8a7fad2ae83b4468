"""Ask an OpenAI-compatible chat-completions endpoint (a vLLM server, or a provider's compatible API) about
one clip: frames as base64 JPEG ``image_url`` parts, the audio as a base64 WAV ``input_audio`` part where
asked, the prompt (with the subtitle) as text.

Standard library HTTP only. A 429 or 5xx answer, a timeout or a dropped connection is retried with
exponential backoff (at least the server's ``Retry-After``); a malformed answer or another 4xx fails that
clip; a refused key (401/403), an unknown model or path (404) or an unreachable server stops the run.
The key is read from an environment variable and sent only in the Authorization header: it is never put
in a message, a log or a file."""
import base64
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np

from feature_extraction.base import ClipError
from toolkit.errors import UserError

RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_WAIT_S = 300.0  # longest single wait between two attempts, whatever Retry-After says
JPEG_QUALITY = 90


class Reply:
    """What one question got: the answer text and what it cost."""

    def __init__(self, text, prompt_tokens=0, completion_tokens=0, finish_reason=None, attempts=1):
        self.text, self.finish_reason, self.attempts = text, finish_reason, attempts
        self.prompt_tokens, self.completion_tokens = int(prompt_tokens or 0), int(completion_tokens or 0)


def jpeg_data_url(frame, image_size):
    """An RGB uint8 frame → ``data:image/jpeg;base64,...``, its longer side cut to ``image_size`` pixels."""
    import cv2

    height, width = frame.shape[:2]
    scale = image_size / max(height, width)
    if scale < 1:
        frame = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ClipError("a frame does not encode as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def retry_after(value):
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def server_message(body, secret=None):
    """The server's own error message (OpenAI's ``{"error": {"message": ...}}``), one line, short, without
    the key even if the server echoed it."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        error = json.loads(text).get("error")
        text = error.get("message", text) if isinstance(error, dict) else str(error or text)
    except (ValueError, AttributeError):
        pass
    text = " ".join(str(text).split())[:160]
    return text.replace(secret, "***") if secret else text


def reply_of(body):
    """The answer text and token counts of a chat-completions response body; ClipError when malformed."""
    try:
        obj = json.loads(body)
        choice = obj["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        head = " ".join(body[:60].decode("utf-8", "replace").split()) if isinstance(body, bytes) else ""
        raise ClipError(f"malformed response ({exc.__class__.__name__}; starts {head!r})") from None
    if isinstance(content, list):  # content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise ClipError(f"malformed response (message content is {type(content).__name__})")
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
    return Reply(content, usage.get("prompt_tokens"), usage.get("completion_tokens"), choice.get("finish_reason"))


class ChatEndpoint:
    """``ask(question)`` → Reply over HTTP; safe to call from several threads (counters under a lock)."""

    kind = "api"
    asks_in_workers = True

    def __init__(self, api_base, model, key_env="OPENAI_API_KEY", send_audio=False, image_size=448, max_tokens=1024,
                 temperature=0.0, timeout=120.0, retries=5, backoff=1.0, concurrency=4):
        if not api_base.startswith(("http://", "https://")):
            raise UserError(f"--api_base {api_base!r}: give the endpoint's base URL, e.g. http://127.0.0.1:8000/v1")
        self.url = api_base.rstrip("/") + ("" if api_base.rstrip("/").endswith("/chat/completions") else "/chat/completions")
        self.name, self.key_env = model, key_env
        self._key = os.environ.get(key_env) or None
        self.takes = frozenset({"frames", "audio"} if send_audio else {"frames"})
        self.image_size, self.max_tokens, self.temperature = image_size, max_tokens, temperature
        self.timeout, self.retries, self.backoff, self.workers = timeout, retries, backoff, concurrency
        self.requests, self.retried, self._lock = 0, 0, threading.Lock()

    def describe(self):
        key = f"key from ${self.key_env}" if self._key else f"no key (${self.key_env} is not set)"
        return f"{self.name} at {self.url} ({key}; {self.workers} at a time)"

    def body(self, question):
        parts = [{"type": "image_url", "image_url": {"url": jpeg_data_url(frame, self.image_size)}} for frame in question.frames]
        if question.audio is not None:
            from feature_extraction.decode import wav_bytes

            data = base64.b64encode(wav_bytes(question.audio)).decode("ascii")
            parts.append({"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
        parts.append({"type": "text", "text": question.text})
        return json.dumps({"model": self.name, "messages": [{"role": "user", "content": parts}],
                           "max_tokens": self.max_tokens, "temperature": self.temperature}).encode("utf-8")

    def _post(self, data):
        """(status, headers, body) of one POST; HTTP errors are returned, network errors raised."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with self._lock:
            self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, exc.read()

    def _fatal(self, status, body):
        message = server_message(body, self._key)
        if status in (401, 403):
            return UserError(f"{self.url} refused the request (HTTP {status}: {message}); put a valid key in "
                             f"${self.key_env} (or name another variable with --api_key_env)")
        return UserError(f"{self.url}: HTTP 404 ({message}); check --api_base (it ends in /v1 for most servers) and "
                         f"that --model {self.name!r} is a model the server serves")

    def ask(self, question):
        data = self.body(question)
        reason = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                with self._lock:
                    self.retried += 1
            wait = None
            try:
                status, headers, body = self._post(data)
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (ConnectionRefusedError, socket.gaierror)):
                    raise UserError(f"cannot reach --api_base {self.url} ({exc.reason}); start the server or fix the "
                                    "URL (answers written so far are kept)") from None
                timed_out = isinstance(exc.reason, (TimeoutError, socket.timeout))
                reason = f"no answer within --timeout {self.timeout:g} s" if timed_out else f"connection failed ({exc.reason})"
            except (TimeoutError, socket.timeout):
                reason = f"no answer within --timeout {self.timeout:g} s"
            except (ConnectionError, http.client.HTTPException) as exc:  # a dropped connection mid-answer
                reason = f"connection lost ({exc.__class__.__name__})"
            else:
                if status == 200:
                    reply = reply_of(body)
                    reply.attempts = attempt + 1
                    return reply
                if status in (401, 403, 404):
                    raise self._fatal(status, body)
                reason = f"HTTP {status}: {server_message(body, self._key)}"
                if status not in RETRY_STATUS:
                    raise ClipError(reason)
                wait = retry_after(headers.get("Retry-After") if headers else None)
            if attempt < self.retries:
                delay = self.backoff * 2 ** attempt * (1 + 0.25 * random.random())
                time.sleep(min(MAX_WAIT_S, max(delay, wait or 0.0)))
        raise ClipError(f"{reason} (after {self.retries + 1} attempts)")
