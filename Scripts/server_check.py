"""Checks a running orochi-server with the official `openai` client, as an application would use it.

    make server-check      # builds, starts the server on a free port, runs this, stops the server

or by hand, against a server already running:

    build/server-venv/bin/python Scripts/server_check.py --base-url http://127.0.0.1:8080/v1 [--server-pid PID]

Completions and chat, non-streamed and streamed: response shapes, usage, stop strings, and that the
streamed text equals the non-streamed text at temperature 0. With --server-pid it ends by sending
SIGTERM during a stream: new requests are refused (503), the stream finishes whole, the server exits.
Exits non-zero at the first failed check.
"""
import argparse
import os
import signal
import sys
import threading
import time

import openai

CHECKS = 0


def check(condition, what):
    global CHECKS
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    CHECKS += 1


def process_gone(pid):
    """True once the process has exited (a zombie waiting for its parent counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_for_server(client, seconds=60):
    deadline = time.time() + seconds
    while True:
        try:
            return client.models.list()
        except openai.APIConnectionError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def usage_ok(usage, what):
    check(usage is not None, f"{what}: usage present")
    check(usage.prompt_tokens > 0 and usage.completion_tokens >= 0, f"{what}: usage counts {usage}")
    check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, f"{what}: total_tokens = prompt + completion")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--prompt", default="ファイルを開くには")
    args = parser.parse_args()

    # No retries: a refused request must show as refused.
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)
    models = wait_for_server(client)
    ids = [m.id for m in models.data]
    check(len(ids) >= 1 and all(m.object == "model" for m in models.data), f"models.list: {ids}")
    model = ids[0]
    print(f"server at {args.base_url}, model {model}, openai {openai.__version__}")

    # Completions, non-streamed.
    c = client.completions.create(model=model, prompt=args.prompt, max_tokens=32, temperature=0)
    check(c.object == "text_completion" and c.id.startswith("cmpl-") and c.model == model, f"completion shape: {c}")
    check(len(c.choices) == 1 and c.choices[0].index == 0, "one choice")
    text = c.choices[0].text
    check(isinstance(text, str) and len(text) > 0, f"completion text: {text!r}")
    check(c.choices[0].finish_reason in ("stop", "length"), f"finish_reason {c.choices[0].finish_reason}")
    usage_ok(c.usage, "completion")
    check(c.usage.completion_tokens <= 32, "completion_tokens <= max_tokens")
    print(f"completions: {text!r} ({c.usage.completion_tokens} tokens, {c.choices[0].finish_reason})")

    # Completions, streamed: the same text at temperature 0; usage in the last chunks.
    chunks = list(client.completions.create(model=model, prompt=args.prompt, max_tokens=32, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    streamed = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    check(streamed == text, f"streamed completion equals non-streamed: {streamed!r} vs {text!r}")
    finish = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    check(len(finish) == 1 and finish[0].choices[0].finish_reason == c.choices[0].finish_reason, "one finish chunk, same reason")
    check(chunks[-1].choices == [] and chunks[-1].usage is not None, "include_usage: a last chunk with usage and no choices")
    usage_ok(chunks[-1].usage, "streamed completion")
    check(chunks[-1].usage.completion_tokens == c.usage.completion_tokens, "streamed usage equals non-streamed")
    print(f"completions, streamed: {len(chunks)} chunks, same text")

    # Stop strings: the text before the first occurrence, finish_reason "stop".
    stop = text[len(text) // 2: len(text) // 2 + 2]
    if stop.strip():
        s = client.completions.create(model=model, prompt=args.prompt, max_tokens=32, temperature=0, stop=[stop, "\n\n\n"])
        expected = text[: text.index(stop)]
        check(s.choices[0].text == expected, f"stop {stop!r}: {s.choices[0].text!r}, expected {expected!r}")
        check(s.choices[0].finish_reason == "stop", "finish_reason stop")
        streamed_stop = "".join(ch.choices[0].text for ch in client.completions.create(
            model=model, prompt=args.prompt, max_tokens=32, temperature=0, stop=stop, stream=True) if ch.choices)
        check(streamed_stop == expected, f"streamed stop: {streamed_stop!r}")
        print(f"stop {stop!r}: {expected!r}")

    # Chat, non-streamed and streamed.
    messages = [{"role": "system", "content": "短く答えてください。"}, {"role": "user", "content": "Debian とは何ですか?"}]
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0)
    check(r.object == "chat.completion" and r.id.startswith("chatcmpl-"), f"chat shape: {r}")
    message = r.choices[0].message
    check(message.role == "assistant" and isinstance(message.content, str), f"chat message {message}")
    usage_ok(r.usage, "chat")
    print(f"chat: {message.content!r} ({r.usage.completion_tokens} tokens, {r.choices[0].finish_reason})")
    chunks = list(client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    check(all(ch.object == "chat.completion.chunk" for ch in chunks), "chunk objects")
    check(chunks[0].choices[0].delta.role == "assistant", "first chunk carries the role")
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    check(streamed == message.content, f"streamed chat equals non-streamed: {streamed!r} vs {message.content!r}")
    check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == r.usage.completion_tokens, "chat stream usage")
    print(f"chat, streamed: {len(chunks)} chunks, same text")

    # Log-probabilities of the sampled tokens.
    lp = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, logprobs=True,
                                        top_logprobs=3)
    content = lp.choices[0].logprobs.content
    check(len(content) > 0 and all(t.logprob <= 0 for t in content), "chat logprobs")
    check(all(len(t.top_logprobs) == 3 and t.top_logprobs[0].logprob == t.logprob for t in content),
          "top_logprobs: three alternatives, the likeliest the greedy token")
    check("".join(t.token for t in content) == lp.choices[0].message.content, "logprob tokens spell the text")

    # Errors: OpenAI's exception types, from the status codes.
    try:
        client.completions.create(model="no-such-model", prompt="x")
        check(False, "unknown model refused")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and e.body.get("code") == "model_not_found", f"404: {e.body}")
    try:
        client.completions.create(model=model, prompt="x", n=2)
        check(False, "n=2 refused")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "n" == e.body.get("param"), f"400: {e.body}")
    try:
        client.completions.create(model=model, prompt=[5] * 5000)
        check(False, "a prompt longer than the context refused")
    except openai.BadRequestError as e:
        check(e.body.get("code") == "context_length_exceeded", f"400: {e.body}")
    print("errors: 404 unknown model, 400 n=2, 400 prompt too long")

    if args.server_pid:
        drain(client, model, args.server_pid, args.prompt)
    print(f"{CHECKS} passed, 0 failed")


def drain(client, model, pid, prompt):
    """SIGTERM during a stream: refused afterwards, the stream ends whole, the server exits."""
    result = {}
    first = threading.Event()

    def stream():
        text, usage, reason = "", None, None
        for ch in client.completions.create(model=model, prompt=prompt, max_tokens=900, temperature=0, stream=True,
                                            extra_body={"ignore_eos": True}):
            if ch.choices:
                text += ch.choices[0].text
                reason = ch.choices[0].finish_reason or reason
                first.set()
            usage = ch.usage or usage
        result.update(text=text, usage=usage, reason=reason)

    thread = threading.Thread(target=stream)
    thread.start()
    check(first.wait(30), "the stream started")
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.1)
    try:
        client.completions.create(model=model, prompt="x", max_tokens=1)
        check(False, "a request after SIGTERM is refused")
    except openai.InternalServerError as e:
        check(e.status_code == 503, f"503 after SIGTERM: {e.status_code} {e.body}")
        refused = "503"
    except openai.APIConnectionError:
        refused = "connection refused"
    thread.join(60)
    check(not thread.is_alive(), "the stream finished")
    check(result.get("reason") == "length" and result["usage"].completion_tokens == 900,
          f"the running stream finished whole after SIGTERM: {result.get('reason')} {result.get('usage')}")
    deadline = time.time() + 30
    while not process_gone(pid) and time.time() < deadline:
        time.sleep(0.1)
    check(process_gone(pid), "the server exited after draining")
    print(f"SIGTERM: new request {refused}, running stream finished ({result['usage'].completion_tokens} tokens), server exited")


if __name__ == "__main__":
    main()
