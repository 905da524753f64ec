#!/usr/bin/python3
"""Client side of bench/batch_bench.sh (stdlib only).

  streams PORT MODEL TOKENS K  -> one JSON line: K greedy /v1/completions
      streamed at once (distinct short prompts); aggregate decode tok/s =
      the tokens after each stream's first / (last token of any stream -
      first token of any stream), and the slowest stream's own rate.
  ttft PORT MODEL WORDS  -> one JSON line: time to first token of a prompt
      whose long "system" part (WORDS words) is new (a miss), then of the
      same system part with another question (a prompt-cache hit), and the
      prompt tokens and cached tokens the server reported.
"""
import http.client
import json
import random
import sys
import threading
import time


def stream(port, model, prompt, tokens, out):
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"content-type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    times, usage = [], None
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            usage = chunk["usage"]
        if chunk["choices"] and chunk["choices"][0].get("text") is not None:
            times.append(time.perf_counter())
    out.update({"t0": t0, "times": times, "usage": usage})


def streams(port, model, tokens, k):
    outs = [dict() for _ in range(k)]
    threads = [threading.Thread(target=stream, args=(port, model, f"Story {i}: once upon a time", tokens, outs[i]))
               for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = min(o["times"][0] for o in outs)
    last = max(o["times"][-1] for o in outs)
    after_first = sum(len(o["times"]) - 1 for o in outs)
    per = [(len(o["times"]) - 1) / (o["times"][-1] - o["times"][0]) for o in outs]
    return {"streams": k, "aggregate_decode_tok_s": round(after_first / (last - first), 2),
            "slowest_stream_tok_s": round(min(per), 2), "tokens_per_stream": [len(o["times"]) for o in outs]}


def ttft(port, model, words):
    rnd = random.Random(time.time())
    vocab = ["alpha", "river", "stone", "quiet", "market", "engine", "orange", "signal", "window", "garden"]
    system = f"[{rnd.random()}] " + " ".join(rnd.choice(vocab) for _ in range(words)) + "\n"
    res = {}
    for name, q in (("miss", "Question: what is first?"), ("hit", "Question: what is last?")):
        out = {}
        stream(port, model, system + q, 2, out)
        res[name + "_ttft_s"] = round(out["times"][0] - out["t0"], 4)
        u = out["usage"] or {}
        res[name + "_prompt_tokens"] = u.get("prompt_tokens")
        res[name + "_cached_tokens"] = (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    res["speedup"] = round(res["miss_ttft_s"] / res["hit_ttft_s"], 1)
    return res


def main():
    port, model = int(sys.argv[2]), sys.argv[3]
    if sys.argv[1] == "streams":
        print(json.dumps(streams(port, model, int(sys.argv[4]), int(sys.argv[5]))))
    elif sys.argv[1] == "ttft":
        print(json.dumps(ttft(port, model, int(sys.argv[4]))))


if __name__ == "__main__":
    main()
