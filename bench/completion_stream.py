"""One streamed greedy POST /v1/completions, timed chunk by chunk (stdlib
only); shared by bench/serve_client.py and bench/batch_client.py, which
import it from this folder."""
import http.client
import json
import time


def stream_completion(port, model, prompt, tokens, timeout=None, empty_text_counts=False):
    """Streams `tokens` greedy tokens of `prompt` from 127.0.0.1:`port`.

    Returns (t0, times, usage): the time the request was sent, the arrival
    time of each SSE chunk whose first choice has text (with
    empty_text_counts, any text, even ""), and the usage of the final chunk
    (None when the server sent none). Asserts the answer is a 200.
    """
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
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
        if chunk["choices"]:
            text = chunk["choices"][0].get("text")
            if (text is not None) if empty_text_counts else text:
                times.append(time.perf_counter())
    return t0, times, usage
