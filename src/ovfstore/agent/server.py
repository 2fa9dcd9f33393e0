"""The agent's HTTP/1.1 server: one thread per connection, bodies read straight into aligned buffers.

Built the way ovirt-imageio serves disk data: a threaded server from the standard library, keep-alive,
`Content-Length` framing only, and a body read with `recv_into` a `memoryview` of a page-aligned buffer
that the connection allocates once and reuses for every transfer it carries. That is one kernel copy
from the socket to the buffer the disk write uses; an asyncio server adds a parser copy, a body queue
and flow-control pauses, and was measured far below the disk's rate (docs/PERFORMANCE.md).

This module knows HTTP and nothing of storage; `app.py` routes requests and translates storage errors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from ovfstore.agent import protocol
from ovfstore.agent.config import AgentConfig
from ovfstore.storage.backend import aligned_buffer
from ovfstore.store.quoting import quoted

log = logging.getLogger(__name__)

# A request head (request line and headers) larger than this is refused: the agent's own are < 1 KiB.
MAX_HEAD = 64 * 1024
# JSON bodies are read whole into memory; the largest the engine sends is a description (< 1 KiB).
MAX_JSON_BODY = 64 << 10
# Arrays and objects nested deeper than this are refused before parsing: no request nests more than 2,
# and the parser would recurse once per level.
MAX_JSON_DEPTH = 16
# An unauthenticated client gets this much of its body drained before the connection is closed, enough
# for its answer to reach it intact, too little to be a way of keeping the agent busy.
MAX_UNAUTHENTICATED_DRAIN = 1 << 20

# Control characters never appear in a request head; a NUL is found at once, without waiting for a line
# end that a garbage stream may never send.
_INVALID_HEAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_REQUEST_LINE = re.compile(r"([A-Z]+) (/\S*) HTTP/1\.([01])$")
_HEADER = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$")
# JSON strings (which may hold brackets) and the brackets outside them.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_NESTING = re.compile(rb"[\[\]{}]")


def _check_json_depth(body: bytes | bytearray) -> None:
    depth = 0
    for bracket in _JSON_NESTING.findall(_JSON_STRING.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > MAX_JSON_DEPTH:
            raise HTTPError(
                400,
                protocol.INVALID_ARGUMENT,
                f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; send a flat object",
            )


class HTTPError(Exception):
    """A request answered with an error: `{"error": code, "message": message}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


class ClientGone(Exception):
    """The client closed the connection or stalled before sending the whole body."""


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(content: Any, status: int = 200) -> Response:
    # Compact, UTF-8, no NaN: what the engine's client (and Starlette, which served this API before) expects.
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": "application/json"})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, transient: bool = False
) -> Response:
    """`{"error", "message", "transient"}`; `transient`: a retry may succeed (docs/AGENT.md, "Errors")."""
    response = json_response({"error": code, "message": message, "transient": transient}, status)
    response.headers.update(headers or {})
    return response


Handler = Callable[["Request"], Response | None]


class Request:
    """One request on a connection. The body is read with `readinto` (or `json`); a handler answers by
    returning a `Response`, or streams one with `start_response` and `write` and returns None."""

    def __init__(
        self,
        conn: Connection,
        method: str,
        target: str,
        headers: dict[str, str],
        length: int | None,
        keep_alive: bool,
    ) -> None:
        self.connection = conn
        self.method = method
        path, _, query = target.partition("?")
        self.path = path
        self.query = dict(parse_qsl(query))
        self.headers = headers
        self.params: dict[str, str] = {}
        # None: the request announced no Content-Length (a chunked body is refused before this exists).
        self.content_length = length
        self.keep_alive = keep_alive
        self.authenticated = False
        self.chunked = False
        self.started = False
        self._remaining = length or 0
        self._continue = headers.get("expect", "").lower() == "100-continue"

    def refuse_chunked(self) -> None:
        if self.chunked:
            # A body without a length can neither be streamed into a volume of a known size nor skipped.
            raise HTTPError(
                411, protocol.LENGTH_REQUIRED, "send Content-Length with the exact number of bytes; chunked is refused"
            )

    @property
    def body_remaining(self) -> int:
        return self._remaining

    @property
    def awaiting_continue(self) -> bool:
        """The client waits for `100 Continue` before it sends the body, and none was sent."""
        return self._continue and self._remaining > 0

    def readinto(self, view: memoryview) -> int:
        """Read body bytes into `view`; 0 only once the whole body is read.

        Raises `ClientGone` if the connection ends or stalls first.
        """
        n = min(len(view), self._remaining)
        if n == 0:
            return 0
        if self._continue:
            self._continue = False
            self.connection.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        got = self.connection.recv_into(view[:n])
        self._remaining -= got
        return got

    def json(self) -> Any:
        """The body as JSON (`HTTPError` 400 if it is not JSON)."""
        if self._remaining > MAX_JSON_BODY:
            raise HTTPError(413, protocol.INVALID_ARGUMENT, f"a JSON body is at most {MAX_JSON_BODY} bytes")
        body = bytearray(self._remaining)
        view = memoryview(body)
        done = 0
        while done < len(body):
            done += self.readinto(view[done:])
        _check_json_depth(body)
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as e:
            raise HTTPError(400, protocol.INVALID_ARGUMENT, f"the request body is not JSON: {quoted(str(e))}") from e

    def start_response(self, status: int, headers: dict[str, str], length: int) -> None:
        self.started = True
        self.connection.send_head(status, headers, length, self.keep_alive)

    def write(self, data: bytes | memoryview) -> None:
        self.connection.sock.sendall(data)


class Connection(socketserver.BaseRequestHandler):
    """One client connection, served by its own thread, one request after the other (keep-alive)."""

    server: Server
    request: socket.socket

    def setup(self) -> None:
        self.sock = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.config = self.server.config
        # Bytes received past the request head: the start of the body (or of the next request).
        self._pending = bytearray()
        self._buffers: list[mmap.mmap] = []
        self._workers: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None
        self.server.register(self)

    def buffers(self, count: int) -> list[mmap.mmap]:
        """`count` aligned buffers of `buffer_size`, mapped at the connection's first transfer and reused by
        every later one, so steady traffic on a connection maps nothing."""
        while len(self._buffers) < count:
            self._buffers.append(aligned_buffer(self.config.buffer_size))
        return self._buffers[:count]

    def workers(self) -> tuple[Executor, Executor]:
        """The connection's two helper threads, one hashing and one writing the buffers this one fills;
        one thread each, so each stage takes the buffers in order."""
        if self._workers is None:
            self._workers = (
                ThreadPoolExecutor(1, thread_name_prefix="agent-hash"),
                ThreadPoolExecutor(1, thread_name_prefix="agent-write"),
            )
        return self._workers

    def finish(self) -> None:
        self.server.unregister(self)
        for worker in self._workers or ():
            worker.shutdown()
        for buf in self._buffers:
            try:
                buf.close()
            except BufferError:
                # Something still holds a view of it; the mapping goes when that view does.
                log.warning("a transfer buffer of a closed connection is still in use; it is freed later")

    # --- reading ------------------------------------------------------------------------------------

    def recv_into(self, view: memoryview) -> int:
        """Fill part of `view` from what is pending, else straight from the socket; never returns 0."""
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            del self._pending[:n]
            return n
        try:
            n = self.sock.recv_into(view)
        except OSError as e:
            raise ClientGone(f"the connection broke: {e}") from e
        if n == 0:
            raise ClientGone("the client closed the connection")
        return n

    def _read_head(self) -> bytes | None:
        """The next request head without its final blank line, or None if the client closed cleanly or
        stayed idle past the keep-alive timeout. Once its first byte came, the head must be whole within
        `head_timeout` (408 otherwise) and at most `MAX_HEAD` bytes (431)."""
        buf = self._pending
        checked = 0
        deadline: float | None = None
        while True:
            # Tolerate the blank lines some clients send between requests (RFC 9112, 2.2).
            while buf.startswith(b"\r\n"):
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end > MAX_HEAD:
                raise _head_too_large()
            if end >= 0:
                head = bytes(buf[:end])
                del buf[: end + 4]
                if _INVALID_HEAD.search(head):
                    raise HTTPError(
                        400, protocol.INVALID_ARGUMENT, "Invalid HTTP request: control characters in the head"
                    )
                return head
            if _INVALID_HEAD.search(buf, checked):
                raise HTTPError(400, protocol.INVALID_ARGUMENT, "Invalid HTTP request: control characters in the head")
            checked = len(buf)
            if len(buf) > MAX_HEAD:
                raise _head_too_large()
            if buf and deadline is None:
                deadline = time.monotonic() + self.config.head_timeout
            if deadline is not None:
                self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                if deadline is None:
                    return None  # idle past the keep-alive timeout
                raise HTTPError(
                    408,
                    protocol.REQUEST_TIMEOUT,
                    f"the request head did not arrive within {self.config.head_timeout} s; send it at once",
                ) from None
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk

    def _parse(self, head: bytes) -> Request:
        lines = head.decode("latin-1").split("\r\n")
        m = _REQUEST_LINE.match(lines[0])
        if not m:
            raise HTTPError(
                400, protocol.INVALID_ARGUMENT, f"Invalid HTTP request: bad request line {lines[0][:100]!r}"
            )
        method, target, minor = m.groups()
        headers: dict[str, str] = {}
        lengths: set[str] = set()
        for line in lines[1:]:
            h = _HEADER.match(line)
            if not h:
                raise HTTPError(400, protocol.INVALID_ARGUMENT, f"Invalid HTTP request: bad header line {line[:100]!r}")
            name, value = h[1].lower(), h[2]
            if name == "content-length":
                lengths.add(value)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if minor == "1" else "keep-alive" in connection
        length = None
        if lengths:
            value = lengths.pop()
            if lengths or not value.isdigit():
                raise HTTPError(
                    400, protocol.INVALID_ARGUMENT, f"Content-Length {headers['content-length']!r} is not a byte count"
                )
            length = int(value)
        request = Request(self, method, target, headers, length, keep_alive)
        # A body without a length (chunked) is refused, after the credential check (`refuse_chunked`).
        request.chunked = "transfer-encoding" in headers
        return request

    # --- writing ------------------------------------------------------------------------------------

    def send_head(self, status: int, headers: dict[str, str], length: int | None, keep_alive: bool) -> None:
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if not keep_alive:
            lines.append("Connection: close")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _send(self, response: Response, keep_alive: bool) -> None:
        length = None if response.status == 204 else len(response.body)
        if not response.body:
            self.send_head(response.status, response.headers, length, keep_alive)
        else:
            # Head and body in one send: one segment for a small answer.
            lines = [f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
            lines += [f"{k}: {v}" for k, v in response.headers.items()]
            lines.append(f"Content-Length: {length}")
            if not keep_alive:
                lines.append("Connection: close")
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)

    def _drain(self, req: Request, limit: int) -> bool:
        """Read and drop what is left of the body, so the client can read its answer and the connection
        carries on; False if more than `limit` bytes are left or the client is gone."""
        if req.body_remaining > limit:
            return False
        scratch = memoryview(bytearray(min(req.body_remaining, 1 << 20)))
        try:
            while req.readinto(scratch):
                pass
        except ClientGone:
            return False
        return True

    # --- the loop -----------------------------------------------------------------------------------

    def handle(self) -> None:
        while not self.server.stopping:
            self.sock.settimeout(self.config.keep_alive_timeout)
            try:
                head = self._read_head()
            except HTTPError as e:
                self._answer_and_close(error_response(e.status, e.code, str(e), e.headers))
                return
            if head is None or not self.server.begin(self):
                return
            try:
                self.sock.settimeout(self.config.transfer_timeout)
                if not self._serve(head):
                    return
            finally:
                self.server.end(self)

    def _serve(self, head: bytes) -> bool:
        """Serve one request; True if the connection can carry another."""
        try:
            req = self._parse(head)
        except HTTPError as e:
            self._answer_and_close(error_response(e.status, e.code, str(e), e.headers))
            return False
        try:
            response = self.server.app(req)
        except HTTPError as e:
            response = error_response(e.status, e.code, str(e), e.headers)
        except ClientGone as e:
            log.warning("%s %s: %s", req.method, req.path, e)
            return False
        except OSError as e:
            if req.started:
                log.warning("%s %s: answer broken off: %s", req.method, req.path, e)
                return False
            raise
        if req.started:
            return req.keep_alive
        if response is None:
            response = error_response(500, protocol.INTERNAL_ERROR, "the agent started no answer; see its log")
        if req.chunked or req.awaiting_continue:
            # A body of no known length cannot be skipped. A client that waits for 100 Continue was
            # refused before any byte (413 over the capacity): it sends no body, and the connection
            # cannot tell whether it might yet, so it ends here.
            self._answer_and_close(response)
            return False
        if req.body_remaining and not self._drain(
            req, req.body_remaining if req.authenticated else MAX_UNAUTHENTICATED_DRAIN
        ):
            self._answer_and_close(response)
            return False
        try:
            self._send(response, req.keep_alive)
        except OSError:
            return False
        return req.keep_alive

    def _answer_and_close(self, response: Response) -> None:
        try:
            self._send(response, keep_alive=False)
            # Half-close and give the client a moment to read the answer before the socket goes: closing
            # with unread bytes would send a reset that can destroy the answer in flight.
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(1.0)
            deadline = time.monotonic() + 1.0
            drained = 0
            while time.monotonic() < deadline and drained < MAX_UNAUTHENTICATED_DRAIN:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass


def _head_too_large() -> HTTPError:
    return HTTPError(431, protocol.INVALID_ARGUMENT, f"Invalid HTTP request: the head exceeds {MAX_HEAD} bytes")


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Accepts on an already bound, listening socket; one thread per connection.

    `drain` stops it gracefully: idle connections are closed, requests in progress may finish.
    """

    daemon_threads = True

    def __init__(self, sock: socket.socket, app: Handler, config: AgentConfig) -> None:
        super().__init__(sock.getsockname(), Connection, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.app = app
        self.config = config
        self.stopping = False
        self._lock = threading.Condition()
        self._idle: set[Connection] = set()
        self._busy = 0
        self._connections = 0  # accepted and not yet closed, counted in the accepting thread

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.stopping:
            self.shutdown_request(request)
            return
        with self._lock:
            full = self._connections >= self.config.max_connections
            if not full:
                self._connections += 1
        if full:
            _refuse_busy(request, self.config.max_connections)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("unexpected failure serving %s", client_address)

    def begin(self, conn: Connection) -> bool:
        """A connection starts a request; False if the server is stopping."""
        with self._lock:
            self._idle.discard(conn)
            if self.stopping:
                return False
            self._busy += 1
            return True

    def end(self, conn: Connection) -> None:
        with self._lock:
            self._busy -= 1
            self._idle.add(conn)
            self._lock.notify_all()

    def register(self, conn: Connection) -> None:
        with self._lock:
            self._idle.add(conn)

    def unregister(self, conn: Connection) -> None:
        with self._lock:
            self._idle.discard(conn)

    def drain(self, timeout: float) -> None:
        """After `shutdown`: close idle connections, wait up to `timeout` for requests in progress."""
        with self._lock:
            self.stopping = True
            for conn in self._idle:
                _shutdown(conn.request)
            if not self._lock.wait_for(lambda: self._busy == 0, timeout):
                log.warning("%d requests still in progress after %s s; stopping anyway", self._busy, timeout)


def _refuse_busy(sock: socket.socket, limit: int) -> None:
    """Answer 503 `agent_busy` on a connection over the limit and close it, in the accepting thread:
    the answer fits the socket's send buffer, and nothing of the request is read."""
    body = error_response(
        503, protocol.AGENT_BUSY, f"the agent serves {limit} connections already (max_connections); retry shortly",
        transient=True,
    ).body  # fmt: skip
    head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with contextlib.suppress(OSError):
        sock.settimeout(0.5)
        sock.sendall(head.encode("latin-1") + body)
        sock.shutdown(socket.SHUT_WR)
    sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def serve(sock: socket.socket, app: Handler, config: AgentConfig, stop: Iterable[int] = ()) -> None:
    """Serve on `sock` until one of the signals in `stop` (or KeyboardInterrupt), then drain."""
    import signal

    server = Server(sock, app, config)

    def on_signal(signum: int, frame: object) -> None:
        # `shutdown` waits for `serve_forever` to return: it cannot run in the thread that serves.
        threading.Thread(target=server.shutdown, daemon=True).start()

    for sig in stop:
        signal.signal(sig, on_signal)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.drain(config.shutdown_timeout)
        server.server_close()
