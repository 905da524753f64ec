#!/usr/bin/python3
"""Client side of bench/serve_bench.sh (stdlib only).

  stream PORT MODEL TOKENS [IDLE]  -> one JSON line: ttft_s, decode_tok_s, tokens
      streams one greedy /v1/completions (the prompt `hart run` gets in
      serve_bench.sh) and times each SSE chunk; with
      IDLE > 0 it first opens IDLE keep-alive connections (one request each,
      then held idle) and keeps them open while the generation streams.
"""
import json
import socket
import sys

from completion_stream import stream_completion


def hold_idle(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        socks.append(s)
    for s in socks:  # each answered once, then left idle (keep-alive)
        s.recv(4096)
    return socks


def stream(port, model, tokens):
    t0, times, usage = stream_completion(port, model, "Tell me a story.", tokens)
    n = usage["completion_tokens"] if usage else len(times)
    ttft = times[0] - t0 if times else float("nan")
    decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {"ttft_s": round(ttft, 4), "decode_tok_s": round(decode, 2), "tokens": n, "chunks": len(times)}


def main():
    if sys.argv[1] == "stream":
        port, model, tokens = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        idle = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        socks = hold_idle(port, idle) if idle else []
        res = stream(port, model, tokens)
        res["idle_connections"] = len(socks)
        # The idle connections must all still be open (not closed by the server).
        alive = 0
        for s in socks:
            s.setblocking(False)
            try:
                alive += 0 if s.recv(1) == b"" else 1
            except BlockingIOError:
                alive += 1
        res["idle_alive"] = alive
        print(json.dumps(res))
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
