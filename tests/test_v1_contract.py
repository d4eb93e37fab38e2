"""The `/v1` contract, driven by the clients integrators use: the official `openai` client, LangChain's
`ChatOpenAI` and LiteLLM. Every documented chat-completions parameter is honoured or refused with a 400
that names it; none is ignored. The offline default (the grounded composer) and a real model endpoint
(respx) both keep `max_tokens` and `stop`; sampling reaches the model."""

from __future__ import annotations

import json
import os

import httpx
import openai
import pytest
import respx

from harness.llm_replies import BASE_URL, text_reply
from server.auth import issue_token

QUESTION = [{"role": "user", "content": "How do withdrawals work, and how long do they take?"}]


@pytest.fixture(scope="module")
def live_composer(knowledge):
    """The offline default (the grounded composer), with a rate limit these many requests stay under."""
    from agents.composer import COMPOSER
    from harness.live import serve

    server = serve(knowledge, COMPOSER, user_messages_per_minute=1000)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live_model(knowledge):
    """The real OpenAI-compatible provider against respx, with the same generous rate limit."""
    from harness.live import serve
    from harness.llm_replies import make_provider

    server = serve(knowledge, make_provider(retries=0), user_messages_per_minute=1000)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live_composer, demo_ids) -> openai.OpenAI:
    """The official client against the offline default."""
    token = issue_token(live_composer.services.settings, demo_ids["nora"])
    return openai.OpenAI(base_url=f"{live_composer.http}/v1", api_key=token, max_retries=0)


@pytest.fixture(scope="module")
def full_answer(client) -> str:
    reply = client.chat.completions.create(model="support", messages=QUESTION)
    assert reply.choices[0].finish_reason == "stop"
    return reply.choices[0].message.content


def test_max_tokens_caps_the_composers_answer_with_finish_reason_length(client, full_answer) -> None:
    from retrieval.tokens import count_tokens

    assert count_tokens(full_answer) > 40
    for cap in ({"max_tokens": 5}, {"max_completion_tokens": 12}):
        limit = next(iter(cap.values()))
        reply = client.chat.completions.create(model="support", messages=QUESTION, **cap)
        text = reply.choices[0].message.content
        assert reply.choices[0].finish_reason == "length", cap
        assert full_answer.startswith(text) and 0 < count_tokens(text) <= limit, (cap, text)
        assert reply.usage.completion_tokens == count_tokens(text)
    streamed, finish = "", None
    for chunk in client.chat.completions.create(model="support", messages=QUESTION, max_tokens=5, stream=True):
        streamed += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "length" and count_tokens(streamed) <= 5 and full_answer.startswith(streamed)


def test_stop_sequences_end_the_answer_before_them(client, full_answer) -> None:
    words = full_answer.split()
    word = words[len(words) // 2]
    before = full_answer[:full_answer.index(word)]
    reply = client.chat.completions.create(model="support", messages=QUESTION, stop=[word, "zzz-never"])
    assert reply.choices[0].message.content == before and reply.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="support", messages=QUESTION, stop=word, stream=True))
    assert streamed == before and word not in streamed


def test_every_chunk_before_the_usage_chunk_has_a_choice_and_usage_comes_only_when_asked(client) -> None:
    for include in (True, False, None):
        options = {} if include is None else {"stream_options": {"include_usage": include}}
        chunks = list(client.chat.completions.create(model="support", messages=QUESTION, stream=True, **options))
        body = chunks[:-1] if include else chunks
        assert all(len(c.choices) == 1 for c in body), include  # a client reading chunk.choices[0] never breaks
        assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1
        if include:
            assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
        else:
            assert all(c.usage is None for c in chunks), include


@pytest.mark.parametrize(("param", "value"), [
    ("n", 2),
    ("tools", [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]),
    ("functions", [{"name": "lookup", "parameters": {"type": "object"}}]),
    ("tool_choice", {"type": "function", "function": {"name": "lookup"}}),
    ("response_format", {"type": "json_object"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}),
    ("logprobs", True),
    ("top_logprobs", 3),
    ("logit_bias", {"1000": 5}),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]),
    ("prediction", {"type": "content", "content": "x"}),
    ("reasoning_effort", "low"),
])
def test_a_parameter_that_cannot_be_honoured_is_refused_naming_it(client, param: str, value) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="support", messages=QUESTION, extra_body={param: value})
    assert refused.value.status_code == 400
    assert refused.value.body["param"] == param and refused.value.body["code"] == "unsupported_parameter"


def test_neutral_values_unknown_fields_and_image_parts(client) -> None:
    reply = client.chat.completions.create(
        model="support", messages=QUESTION, n=1, response_format={"type": "text"}, tool_choice="none",
        modalities=["text"], user="end-user-7", seed=3, temperature=0.2, top_p=0.9, presence_penalty=0.5,
        extra_body={"some_future_field": {"x": 1}})
    assert reply.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="support", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is on this receipt?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert refused.value.body["param"] == "messages[0].content[1]"
    with pytest.raises(openai.BadRequestError):  # a text part whose text is not a string
        client.chat.completions.create(model="support", messages=[{"role": "user", "content": [
            {"type": "text", "text": 123}]}])


def test_sampling_reaches_the_model_and_its_stop_is_kept_too(live_model, demo_ids) -> None:
    token = issue_token(live_model.services.settings, demo_ids["nora"])
    bodies: list[dict] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        # a model that ignores `stop`: the service still ends the answer before it
        return text_reply("Withdrawals take two days. END Ignore this part.", pieces=6)

    with respx.mock(assert_all_called=False) as router:
        router.post(f"{BASE_URL}/chat/completions").mock(side_effect=endpoint)
        router.route(host="127.0.0.1").pass_through()
        client = openai.OpenAI(base_url=f"{live_model.http}/v1", api_key=token, max_retries=0)
        reply = client.chat.completions.create(model="marcus", messages=QUESTION, temperature=0.15, top_p=0.5,
                                               seed=11, stop=["END"], max_tokens=50, frequency_penalty=0.3)
    sent = bodies[-1]
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["stop"], sent["max_tokens"]) == (
        0.15, 0.5, 11, ["END"], 50)
    assert sent["frequency_penalty"] == 0.3 and "presence_penalty" not in sent
    assert reply.choices[0].message.content == "Withdrawals take two days. "
    assert reply.choices[0].finish_reason == "stop"


def test_langchain_chat_openai_keeps_the_contract(live_composer, client, full_answer) -> None:
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    def chat(**options):
        return ChatOpenAI(model="support", base_url=f"{live_composer.http}/v1", api_key=client.api_key,
                          max_retries=0, **options)

    capped = chat(max_tokens=5).invoke(QUESTION[0]["content"])
    assert capped.response_metadata["finish_reason"] == "length" and full_answer.startswith(capped.content)
    assert capped.usage_metadata["output_tokens"] <= 5
    word = full_answer.split()[3]
    stopped = chat().invoke(QUESTION[0]["content"], stop=[word])
    assert stopped.content == full_answer[:full_answer.index(word)]
    pieces = list(chat(stream_usage=True).stream(QUESTION[0]["content"]))
    assert "".join(p.content for p in pieces) == full_answer
    assert sum(p.usage_metadata["output_tokens"] for p in pieces if p.usage_metadata) > 0

    class Answer(BaseModel):
        text: str

    with pytest.raises(openai.BadRequestError):  # structured output asks for a json_schema response_format
        chat().with_structured_output(Answer).invoke(QUESTION[0]["content"])
    with pytest.raises(openai.BadRequestError):  # tools the client brings are refused, not ignored
        chat().bind_tools([Answer], tool_choice="Answer").invoke(QUESTION[0]["content"])


def test_litellm_keeps_the_contract(live_composer, client, full_answer) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # its price list from the package, not the web
    import litellm

    options = {"model": "openai/support", "api_base": f"{live_composer.http}/v1", "api_key": client.api_key,
               "messages": QUESTION, "num_retries": 0}
    capped = litellm.completion(max_tokens=5, **options)
    assert capped.choices[0].finish_reason == "length" and full_answer.startswith(capped.choices[0].message.content)
    word = full_answer.split()[3]
    stopped = litellm.completion(stop=[word], **options)
    assert stopped.choices[0].message.content == full_answer[:full_answer.index(word)]
    streamed = "".join(c.choices[0].delta.content or "" for c in litellm.completion(stream=True, **options))
    assert streamed == full_answer
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(n=2, **options)
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(response_format={"type": "json_object"}, **options)


def test_validation_errors_name_the_parameter(client) -> None:
    for body, param in (({"max_tokens": 0}, "max_tokens"), ({"temperature": 5}, "temperature"),
                        ({"stop": 5}, "stop"), ({"stream_options": "x"}, "stream_options")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="support", messages=QUESTION, extra_body=body)
        assert refused.value.body["param"] == param and refused.value.body["message"].startswith(param)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="support", messages=[{"role": "assistant", "content": "Hi"}])
    assert refused.value.body["param"] == "messages"


def test_the_composer_counts_its_prompt_and_refuses_instructions_it_cannot_follow(client) -> None:
    reply = client.chat.completions.create(model="support", messages=QUESTION)
    assert reply.usage.prompt_tokens > 100  # the persona's prompt, sources and question, as a model would read them
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="support", messages=[
            {"role": "system", "content": "Answer in French."}, *QUESTION])
    assert refused.value.body["param"] == "messages[0]"  # never dropped silently
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="support", messages=[
            *QUESTION, {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{}"}, {"role": "user", "content": "And?"}])
    assert refused.value.body["param"] == "messages[2]"


@pytest.fixture
def model_client(live_model, demo_ids):
    """The official client against the app with a real model endpoint (respx); the endpoint's replies come
    from `replies` (a list the test fills), its requests go to `requests`."""
    token = issue_token(live_model.services.settings, demo_ids["nora"])
    replies: list = []
    requests: list[dict] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    with respx.mock(assert_all_called=False) as router:
        router.post(f"{BASE_URL}/chat/completions").mock(side_effect=endpoint)
        router.route(host="127.0.0.1").pass_through()
        yield openai.OpenAI(base_url=f"{live_model.http}/v1", api_key=token, max_retries=0), replies, requests


def test_a_failed_model_is_a_5xx_not_an_empty_answer(model_client) -> None:
    client, replies, _ = model_client
    replies += [httpx.Response(500, json={"error": {"message": "boom at 10.0.0.7:8080"}})] * 2
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="marcus", messages=QUESTION)
    assert failed.value.status_code == 502 and failed.value.body["code"] == "llm_unavailable"
    assert "10.0.0.7" not in failed.value.message
    with pytest.raises(openai.APIError) as broken:  # streaming: an SSE error event, then the end
        list(client.chat.completions.create(model="marcus", messages=QUESTION, stream=True))
    assert "language model" in broken.value.message
    replies.append(httpx.ReadTimeout("no first byte"))
    with pytest.raises(openai.APIStatusError) as slow:
        client.chat.completions.create(model="marcus", messages=QUESTION)
    assert slow.value.status_code == 504 and slow.value.body["code"] == "llm_timeout"


def test_a_strict_persona_never_streams_text_it_withdraws(model_client) -> None:
    """Support is strictly grounded: the model's second sentence invents a price, so its answer is replaced.
    A standard client streaming it sees the replacement only, never the model's sentences glued to it."""
    client, replies, _ = model_client
    invented = "Every plan has its own commission. The Plus plan costs $999 a month."
    replies += [text_reply(invented, pieces=9) for _ in range(2)]
    whole = client.chat.completions.create(model="support", messages=[
        {"role": "user", "content": "What does the Plus plan cost?"}])
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "What does the Plus plan cost?"}], stream=True))
    assert "$999" not in streamed and "Every plan" not in streamed
    assert streamed == whole.choices[0].message.content and streamed
    from retrieval.tokens import count_tokens  # usage counts the replacement the client got, too

    assert whole.usage.completion_tokens >= count_tokens(whole.choices[0].message.content)


def test_a_models_answer_cut_by_max_tokens_counts_what_was_returned(model_client) -> None:
    from retrieval.tokens import count_tokens

    client, replies, requests = model_client
    replies.append(text_reply("Withdrawals take two business days to reach your bank account.", pieces=5))
    reply = client.chat.completions.create(model="marcus", messages=[
        {"role": "system", "content": "Answer in one sentence."}, *QUESTION], max_tokens=6)
    text = reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "length" and count_tokens(text) <= 6
    assert reply.usage.completion_tokens == count_tokens(text)
    system = requests[-1]["messages"][0]["content"]  # the caller's instructions, below the persona's rules
    assert system.endswith("Answer in one sentence.") and "Instructions from the application" in system
