#!/usr/bin/env python3
"""Checks that a Chat Completions server speaks the protocol the official `openai` client reads.

Usage: openai-check.py BASE_URL [API_KEY]

Runs one streamed call (with `stream_options={"include_usage": True}`) and one plain call, and
asserts the text and the usage the test's fake provider is scripted with ("Hello", " there";
7 prompt and 3 completion tokens). Exits non-zero with the reason on any difference.
"""

import sys

import openai


def main() -> int:
    base_url = sys.argv[1]
    api_key = sys.argv[2] if len(sys.argv) > 2 else "sk-openai-check"
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]

    stream = client.chat.completions.create(
        model="fake-model",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, roles = "", None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices:
            delta = chunk.choices[0].delta
            if delta.role:
                roles.append(delta.role)
            if delta.content:
                text += delta.content
    assert text == "Hello there", f"streamed text: {text!r}"
    assert roles == ["assistant"], f"roles: {roles!r}"
    assert usage is not None, "no usage chunk"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 3, 10), usage

    plain = client.chat.completions.create(model="fake-model", messages=messages)
    assert plain.choices[0].message.content == "Hello there", plain
    assert plain.choices[0].finish_reason == "stop", plain
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (7, 3), plain.usage

    try:
        client.chat.completions.create(model="fake-model", messages=messages)
    except openai.APIStatusError as e:
        assert e.status_code == 401, e.status_code
        assert e.body["code"] == "invalid_api_key", e.body
    else:
        raise AssertionError("the scripted 401 was not raised")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
