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
  choices PORT MODEL TOKENS N  -> one JSON line: one /v1/completions request
      with n = N (seed 7, temperature 1, TOKENS tokens each; the server
      decodes the choices in one batch, the prompt once) against the same N
      choices as N requests with n = 1 and seeds 7..7+N-1 one after another
      (as the server ran them before); wall times, and whether every
      choice's text is the same both ways.
"""
import http.client
import json
import random
import sys
import threading
import time

from completion_stream import stream_completion


def stream(port, model, prompt, tokens, out):
    t0, times, usage = stream_completion(port, model, prompt, tokens, timeout=600, empty_text_counts=True)
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


def complete(port, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    assert r.status == 200, data
    return json.loads(data)


def choices(port, model, tokens, n):
    prompt = "Story: " + " ".join(["once upon a time there was a quiet river"] * 6)
    base = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 1}
    complete(port, {**base, "max_tokens": 1, "seed": 1})  # warm
    t0 = time.perf_counter()
    alone = [complete(port, {**base, "seed": 7 + i})["choices"][0]["text"] for i in range(n)]
    t1 = time.perf_counter()
    batched = complete(port, {**base, "seed": 7, "n": n})
    t2 = time.perf_counter()
    same = [c["text"] for c in batched["choices"]] == alone
    return {"n": n, "tokens_each": tokens, "prompt_tokens": batched["usage"]["prompt_tokens"],
            "completion_tokens": batched["usage"]["completion_tokens"],
            "sequential_s": round(t1 - t0, 3), "batched_s": round(t2 - t1, 3),
            "speedup": round((t1 - t0) / (t2 - t1), 2), "same_texts": same}


def main():
    port, model = int(sys.argv[2]), sys.argv[3]
    if sys.argv[1] == "streams":
        print(json.dumps(streams(port, model, int(sys.argv[4]), int(sys.argv[5]))))
    elif sys.argv[1] == "ttft":
        print(json.dumps(ttft(port, model, int(sys.argv[4]))))
    elif sys.argv[1] == "choices":
        print(json.dumps(choices(port, model, int(sys.argv[4]), int(sys.argv[5]))))


if __name__ == "__main__":
    main()
