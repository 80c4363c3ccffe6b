"""A local OpenAI-compatible server whose behaviour each request scripts (tests, benchmarks, demos).

Endpoints: ``POST /v1/chat/completions`` (streamed SSE and not), ``POST /v1/embeddings``, ``GET /v1/models``,
``POST /v1/audio/transcriptions`` (multipart upload; ``verbose_json`` with the segments scripted by
``script_transcript(model, segments)``, else one segment saying how many bytes it heard), plus ``GET /_control/requests`` (what it received and how each request ended) and ``POST /_control/reset``.

Behaviour is scripted in the model name as a query string, so the real SDK needs nothing special, and a bot's
primary and fallback models can behave differently: ``"gpt-4o-mini?status=429&retry_after=1&fail=2"``.
The same parameters may come in an ``X-Fake-Script`` header. Parameters:

``reply``        the answer text (default: "Echo: " + the last user message)
``words``        answer with N generated words instead
``tps``          tokens (words) per second; default unthrottled
``burst=1``      write the whole streamed answer at once (every chunk, then the end) instead of one write per
                 token: a provider whose tokens arrive faster than they are read
``status``       answer with this HTTP error status (e.g. 429, 500, 401)
``retry_after``  seconds for the ``Retry-After`` header of an error
``stall``        seconds of silence before the first token (after the headers when streaming)
``stall_headers`` seconds of silence before any response byte
``break_after``  send N tokens, then cut the connection without finishing the stream
``drop``         close the connection without answering
``usage=0``      never report token usage
``no_stream_options=1`` refuse requests that set ``stream_options`` with a 400, like some older servers
``rewrite``      the answer to a query-rewrite request (chatbots/llm/rewrite.py); without it the server
                 rewrites deterministically: the last message's first reference word ("that", "it", …)
                 replaced by the previous message's topic words, or those words appended
``rewrite_stall`` seconds of silence before answering a rewrite request (answers are not delayed)
``rewrite_status`` answer rewrite requests with this HTTP error status (answers are not affected)
``fail``         the misbehaviour applies only to the first N requests with this exact model string; later
                 ones are answered normally (add e.g. ``&id=…`` to keep counters of separate tests apart)

Run by hand: ``manage.py fake_llm --port 8199``; in tests: ``with FakeLLMServer() as server: server.base_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl

LOREM = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
]
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ClientGone(Exception):
    pass


@dataclass
class RequestRecord:
    id: int
    path: str
    model: str = ""
    stream: bool = False
    include_usage: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # everything else the request set
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    tokens_sent: int = 0
    outcome: str = "pending"  # ok | status <n> | dropped | broken | client_disconnected


@dataclass
class Script:
    reply: str | None = None
    words: int = 0
    tps: float = 0.0
    burst: bool = False
    status: int = 0
    retry_after: str | None = None
    stall: float = 0.0
    stall_headers: float = 0.0
    break_after: int = -1
    drop: bool = False
    usage: bool = True
    no_stream_options: bool = False
    rewrite: str | None = None
    rewrite_stall: float = 0.0
    rewrite_status: int = 0

    @classmethod
    def parse(cls, query: str) -> Script:
        params = dict(parse_qsl(query, keep_blank_values=True))
        return cls(
            reply=params.get("reply"),
            words=int(params.get("words", 0)),
            tps=float(params.get("tps", 0)),
            burst=params.get("burst", "0") not in ("0", ""),
            status=int(params.get("status", 0)),
            retry_after=params.get("retry_after"),
            stall=float(params.get("stall", 0)),
            stall_headers=float(params.get("stall_headers", 0)),
            break_after=int(params.get("break_after", -1)),
            drop=params.get("drop", "0") not in ("0", ""),
            usage=params.get("usage", "1") != "0",
            no_stream_options=params.get("no_stream_options", "0") not in ("0", ""),
            rewrite=params.get("rewrite"),
            rewrite_stall=float(params.get("rewrite_stall", 0)),
            rewrite_status=int(params.get("rewrite_status", 0)),
        )


def _apply_limits(tokens: list[str], payload: dict[str, Any]) -> tuple[list[str], str]:
    """The answer as OpenAI ends it: cut before the first ``stop`` sequence (``finish_reason`` "stop"), or
    after ``max_tokens``/``max_completion_tokens`` tokens ("length")."""
    stops = payload.get("stop") or []
    stops = [stops] if isinstance(stops, str) else [s for s in stops if isinstance(s, str) and s]
    text = "".join(tokens)
    cut = min((text.find(stop) for stop in stops if stop in text), default=-1)
    if cut >= 0:
        kept, length = [], 0
        for token in tokens:
            if length + len(token) > cut:
                if cut > length:
                    kept.append(token[: cut - length])
                break
            kept.append(token)
            length += len(token)
        tokens = kept
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(tokens):
        return tokens[:limit], "length"
    return tokens, "stop"


def _split_model(model: str) -> tuple[str, str]:
    name, _, query = model.partition("?")
    return name, query


# The start of the instruction of a query-rewrite request (chatbots.llm.rewrite.REWRITE_INSTRUCTION; not
# imported, so that this server runs without Django).
REWRITE_INSTRUCTION = "Rewrite the user's last message as one standalone search question"
REFERENCE_WORDS = re.compile(r"\b(that|it|this|they|them|those|these)\b", re.IGNORECASE)
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "do",
        "does",
        "did",
        "how",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "can",
        "could",
        "i",
        "my",
        "me",
        "you",
        "your",
        "we",
        "our",
        "of",
        "to",
        "for",
        "in",
        "on",
        "at",
        "and",
        "or",
        "with",
        "about",
        "there",
        "this",
        "that",
        "it",
    ]
)


def fake_rewrite(user_content: str) -> str:
    """A deterministic standalone rewrite of a rewrite request's user message ("Earlier messages: 1. …
    Last message: …"): the last message's first reference word replaced by the content words of the
    previous message, or those words appended when it has none."""
    earlier, _, last = user_content.rpartition("Last message:")
    turns = [line.split(". ", 1)[-1] for line in earlier.splitlines() if re.match(r"^\d+\. ", line)]
    last = last.strip()
    topic = " ".join(
        w for w in re.findall(r"[\w'-]+", turns[-1] if turns else "") if w.lower() not in STOP_WORDS
    )
    if not topic:
        return last
    if REFERENCE_WORDS.search(last):
        return REFERENCE_WORDS.sub(topic, last, count=1)
    return f"{last.rstrip('?')} ({topic})?"


def _count_tokens(text: str) -> int:
    return len(re.findall(r"\S+", text))


def _embed(text: str, dimensions: int) -> list[float]:
    """Bag-of-words hashing: texts sharing words get similar vectors, and the same text the same vector."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()) or [""]:
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str]]:
    """A multipart/form-data body's fields: name → (value, filename or "")."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        return {}
    fields = {}
    for part in body.split(b"--" + boundary[1].encode())[1:]:
        head, _, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name is None:
            continue
        filename = re.search(rb'filename="([^"]*)"', head)
        fields[name[1].decode()] = (value.removesuffix(b"\r\n"), filename[1].decode() if filename else "")
    return fields


def _audio_format(data: bytes) -> str:
    """What the uploaded bytes are, by their magic numbers (tests check that video became audio)."""
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] == b"RIFF":
        return "wav"
    if data[4:8] == b"ftyp":
        return "mp4"
    return "unknown"


class FakeLLMServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        self.host = host
        self.port = port
        self.api_key = api_key
        self.requests: list[RequestRecord] = []
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far: clients should reuse them (keep-alive)
        self.transcripts: dict[str, list[tuple[float, float, str]]] = {}

    # --- running -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def serve(self) -> asyncio.Server:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    def start(self) -> FakeLLMServer:
        """Serve from a background thread with its own event loop (for tests and benchmarks)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-llm", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._server:
                self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._counters.clear()

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Poll until ``predicate(requests)`` is true (the server runs in another thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.requests)):
                return True
            time.sleep(0.01)
        return False

    # --- HTTP plumbing -------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            keep_alive = True
            while keep_alive:
                request = await self._read_request(reader)
                if request is None:
                    break
                keep_alive = await self._dispatch(*request, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ClientGone):
            pass
        except asyncio.CancelledError:
            pass  # the server stops: kept-alive connections end here, quietly
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader
    ) -> tuple[str, str, dict[str, str], bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # the (empty) trailer
            return method, target, headers, b"".join(parts)
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        return method, target, headers, body

    @staticmethod
    def _head(
        status: int,
        content_type: str,
        extra: dict[str, str] | None = None,
        length: int | None = None,
    ) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Type: {content_type}"]
        lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
        lines.append("Connection: keep-alive")
        lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, payload: object, extra: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        writer.write(self._head(status, "application/json", extra, length=len(body)) + body)
        await writer.drain()

    async def _dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path = target.split("?", 1)[0].rstrip("/")
        if path == "/_control/requests":
            await self._send_json(writer, 200, [asdict(r) for r in self.requests])
            return True
        if path == "/_control/reset" and method == "POST":
            self.reset()
            await self._send_json(writer, 200, {"ok": True})
            return True
        with self._lock:
            record = RequestRecord(id=len(self.requests) + 1, path=path)
            self.requests.append(record)
        if self.api_key is not None and headers.get("authorization", "") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            record.outcome, record.finished = "status 401", time.monotonic()
            # Like some real vendors, echo the key back: the client must never pass this text on verbatim.
            await self._send_json(
                writer,
                401,
                {
                    "error": {
                        "message": f"Incorrect API key provided: {given}.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
            return True
        if path.endswith("/models") and method == "GET":
            record.outcome, record.finished = "ok", time.monotonic()
            models = ["fake-chat", "fake-embed", "gpt-4o-mini"]
            await self._send_json(
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "parlor-fake"} for m in models
                    ],
                },
            )
            return True
        if path.endswith("/audio/transcriptions") and method == "POST":
            return await self._transcription(headers, body, record, writer)
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            await self._send_json(
                writer, 400, {"error": {"message": "Body is not JSON.", "type": "bad_request"}}
            )
            return True
        if path.endswith("/embeddings") and method == "POST":
            return await self._embeddings(payload, record, writer)
        if path.endswith("/chat/completions") and method == "POST":
            return await self._chat(payload, headers, record, reader, writer)
        record.outcome = "status 404"
        await self._send_json(
            writer, 404, {"error": {"message": f"No route {method} {path}", "type": "not_found"}}
        )
        return True

    # --- endpoints -----------------------------------------------------------------------------
    async def _embeddings(
        self, payload: dict[str, Any], record: RequestRecord, writer: asyncio.StreamWriter
    ) -> bool:
        inputs = payload.get("input", "")
        inputs = [inputs] if isinstance(inputs, str) else [str(item) for item in inputs]
        dimensions = int(payload.get("dimensions") or 256)
        model = str(payload.get("model", "fake-embed"))
        record.model = model
        record.outcome, record.finished = "ok", time.monotonic()
        tokens = sum(_count_tokens(text) for text in inputs)
        await self._send_json(
            writer,
            200,
            {
                "object": "list",
                "model": _split_model(model)[0],
                "data": [
                    {"object": "embedding", "index": i, "embedding": _embed(text, dimensions)}
                    for i, text in enumerate(inputs)
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
        return True

    def script_transcript(self, model: str, segments: list[tuple[float, float, str]]) -> None:
        """What ``/audio/transcriptions`` answers for ``model`` (its name before any ``?``): these
        (start, end, text) segments, times from the start of each uploaded file."""
        self.transcripts[model] = segments

    async def _transcription(
        self, headers: dict[str, str], body: bytes, record: RequestRecord, writer: asyncio.StreamWriter
    ) -> bool:
        fields = _multipart(headers.get("content-type", ""), body)
        audio = fields.get("file", (b"", ""))[0]
        model = fields.get("model", (b"", ""))[0].decode()
        record.model = model
        record.params = {
            "filename": fields.get("file", (b"", ""))[1], "bytes": len(audio), "format": _audio_format(audio),
            **{name: value.decode() for name, (value, filename) in fields.items() if not filename},
        }  # fmt: skip
        script = self._script_for(model, headers)
        if script.status or not audio:
            status = script.status or 400
            record.outcome, record.finished = f"status {status}", time.monotonic()
            message = "Scripted failure" if script.status else "No audio file was sent."
            await self._send_json(writer, status, {"error": {"message": message, "type": "invalid_request"}})
            return True
        scripted = self.transcripts.get(_split_model(model)[0])
        segments = scripted if scripted is not None else [(0.0, 1.0, f"Heard {len(audio)} bytes.")]
        record.outcome, record.finished = "ok", time.monotonic()
        await self._send_json(
            writer,
            200,
            {
                "task": "transcribe",
                "language": "english",
                "duration": max((end for _, end, _ in segments), default=0.0),
                "text": " ".join(text for _, _, text in segments),
                "segments": [
                    {"id": i, "seek": 0, "start": start, "end": end, "text": f" {text}", "tokens": [],
                     "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}
                    for i, (start, end, text) in enumerate(segments)
                ],
            },
        )  # fmt: skip
        return True

    def _script_for(self, model: str, headers: dict[str, str]) -> Script:
        _, query = _split_model(model)
        query = "&".join(part for part in (query, headers.get("x-fake-script", "")) if part)
        params = dict(parse_qsl(query, keep_blank_values=True))
        with self._lock:
            count = self._counters[model] = self._counters.get(model, 0) + 1
        if "fail" in params and count > int(params["fail"]):
            keep = {
                k: v
                for k, v in params.items()
                if k in ("reply", "words", "tps", "burst", "usage", "no_stream_options")
            }
            return Script.parse("&".join(f"{k}={v}" for k, v in keep.items()))
        return Script.parse(query)

    async def _chat(
        self,
        payload: dict[str, Any],
        headers: dict[str, str],
        record: RequestRecord,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        model = str(payload.get("model", ""))
        name, _ = _split_model(model)
        record.model = model
        record.stream = bool(payload.get("stream"))
        record.include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        try:
            script = self._script_for(model, headers)
        except ValueError as exc:
            await self._send_json(
                writer, 400, {"error": {"message": f"Bad script: {exc}", "type": "bad_request"}}
            )
            return True
        messages = payload.get("messages") or []
        record.messages = messages
        record.params = {k: v for k, v in payload.items() if k not in ("messages", "model")}
        prompt_tokens = sum(_count_tokens(str(m.get("content", ""))) for m in messages)
        if script.stall_headers:
            await asyncio.sleep(script.stall_headers)
        if script.drop:
            record.outcome, record.finished = "dropped", time.monotonic()
            writer.transport.abort()
            return False
        if script.no_stream_options and "stream_options" in payload:
            record.outcome, record.finished = "status 400", time.monotonic()
            await self._send_json(
                writer,
                400,
                {
                    "error": {
                        "message": "Unrecognized request argument supplied: stream_options",
                        "type": "invalid_request_error",
                    }
                },
            )
            return True
        if script.status:
            record.outcome, record.finished = f"status {script.status}", time.monotonic()
            extra = {"Retry-After": script.retry_after} if script.retry_after is not None else {}
            kind = "rate_limit_exceeded" if script.status == 429 else "server_error"
            await self._send_json(
                writer,
                script.status,
                {"error": {"message": f"Scripted failure {script.status}", "type": kind, "code": kind}},
                extra,
            )
            return True
        system = (
            str(messages[0].get("content", "")) if messages and messages[0].get("role") == "system" else ""
        )
        if system.startswith(REWRITE_INSTRUCTION):
            return await self._rewrite(messages, script, record, name, prompt_tokens, writer)
        if script.words:
            tokens = [LOREM[i % len(LOREM)] for i in range(script.words)]
        else:
            last_user = next(
                (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), ""
            )
            tokens = (script.reply if script.reply is not None else f"Echo: {last_user}").split()
        tokens = [t if i == 0 else " " + t for i, t in enumerate(tokens)]
        tokens, finish = _apply_limits(tokens, payload)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens),
            "total_tokens": prompt_tokens + len(tokens),
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if not record.stream:
            if script.stall:
                await asyncio.sleep(script.stall)
            record.tokens_sent = len(tokens)
            record.outcome, record.finished = "ok", time.monotonic()
            await self._send_json(
                writer,
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": name,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": finish,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                        }
                    ],
                    **({"usage": usage} if script.usage else {}),
                },
            )
            return True
        return await self._stream(record, script, tokens, usage, completion_id, name, reader, writer, finish)

    async def _rewrite(
        self,
        messages: list[dict[str, Any]],
        script: Script,
        record: RequestRecord,
        name: str,
        prompt_tokens: int,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """A query-rewrite request (non-streamed): the scripted rewrite, or ``fake_rewrite``'s."""
        if script.rewrite_stall:
            await asyncio.sleep(script.rewrite_stall)
        if script.rewrite_status:
            record.outcome, record.finished = f"status {script.rewrite_status}", time.monotonic()
            await self._send_json(
                writer,
                script.rewrite_status,
                {"error": {"message": f"Scripted failure {script.rewrite_status}", "type": "server_error"}},
            )
            return True
        user = str(messages[-1].get("content", "")) if messages else ""
        text = script.rewrite if script.rewrite is not None else fake_rewrite(user)
        completion_tokens = _count_tokens(text)
        record.tokens_sent = completion_tokens
        record.outcome, record.finished = "ok", time.monotonic()
        await self._send_json(
            writer,
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )
        return True

    async def _stream(
        self,
        record: RequestRecord,
        script: Script,
        tokens: list[str],
        usage: dict[str, int],
        completion_id: str,
        name: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        finish: str = "stop",
    ) -> bool:
        """Stream the answer; True when the connection stays open for the next request (keep-alive, as
        hosted providers do). A client sends nothing while a response streams, so EOF means it went away."""
        gone = asyncio.ensure_future(reader.read(1))

        async def pause(seconds: float) -> None:
            await asyncio.wait({gone}, timeout=seconds)
            if gone.done():
                raise ClientGone

        held: list[bytes] = []  # burst: everything goes out in one write at the end

        async def send(data: dict[str, Any] | str) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            chunk = f"data: {text}\n\n".encode()
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            if script.burst:
                held.append(framed)
                return
            writer.write(framed)
            await writer.drain()
            if gone.done():
                raise ClientGone

        def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        try:
            writer.write(self._head(200, "text/event-stream", {"Cache-Control": "no-cache"}))
            await writer.drain()
            await pause(script.stall)
            await send(chunk({"role": "assistant", "content": ""}))
            for index, token in enumerate(tokens):
                if index == script.break_after:
                    record.outcome, record.finished = "broken", time.monotonic()
                    writer.transport.abort()
                    return False
                if index and script.tps:
                    await pause(1 / script.tps)
                await send(chunk({"content": token}))
                record.tokens_sent += 1
            await send(chunk({}, finish))
            if record.include_usage and script.usage:
                await send(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": name,
                        "choices": [],
                        "usage": usage,
                    }
                )
            await send("[DONE]")
            writer.write(b"".join(held) + b"0\r\n\r\n")
            await writer.drain()
            record.outcome = "ok"
        except (ClientGone, ConnectionError):
            record.outcome = "client_disconnected"
            return False
        finally:
            record.finished = record.finished or time.monotonic()
            gone.cancel()
        # The reader must be free before the next request is read; EOF or a byte read meanwhile ends it.
        await asyncio.wait({gone})
        return gone.cancelled()
