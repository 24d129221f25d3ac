"""LangChain messages as hub messages (the mirror of a LangGraph ``messages`` channel)."""

from __future__ import annotations

from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from hub.integrations.langgraph.messages import to_spec
from schemas.parts import part_from_json


def test_roles_text_tool_calls_and_results() -> None:
    assert to_spec(HumanMessage("hi", id="h1")) == {
        "role": "user",
        "content": "hi",  # one text: as a string, the SDK's one-pass path
        "metadata": {"langgraph_message_id": "h1"},
    }
    assert to_spec(SystemMessage("be brief", id="s"))["role"] == "system"  # type: ignore[index]
    call = AIMessage(
        "",
        id="a1",
        tool_calls=[{"id": "c1", "name": "weather", "args": {"city": "Lisbon"}}],
        response_metadata={"model_name": "fake-1"},
    )
    spec = to_spec(call)
    assert spec is not None and spec["role"] == "assistant" and spec["model"] == "fake-1"
    assert spec["content"] == [
        {"type": "tool_call", "tool_call_id": "c1", "name": "weather", "input": {"city": "Lisbon"}}
    ]
    result = to_spec(ToolMessage("sunny", tool_call_id="c1", id="t1", status="error"))
    assert result is not None and result["role"] == "tool"
    assert result["content"] == [
        {"type": "tool_result", "tool_call_id": "c1", "status": "error", "content": "sunny"}
    ]
    assert to_spec(RemoveMessage(id="h1")) is None


def test_content_blocks_keep_what_is_not_text() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    spec = to_spec(HumanMessage([{"type": "text", "text": "look"}, image, "more"], id="x"))
    assert spec is not None
    assert spec["content"] == [
        {"type": "text", "text": "look"},
        {"type": "data", "kind": "image_url", "data": image},
        {"type": "text", "text": "more"},
    ]
    for part in spec["content"]:  # each is a part the hub accepts
        part_from_json(part)
    empty = to_spec(AIMessage("", id="e"))
    assert empty is not None and empty["content"] == [{"type": "text", "text": ""}]


def test_text_with_control_characters_is_kept_exactly() -> None:
    coloured = "\x1b[31mred\x1b[0m and a bell \x07"
    spec = to_spec(ToolMessage(coloured, tool_call_id="c1", id="t"))
    assert spec is not None and spec["content"][0]["content"] == coloured
    spec = to_spec(AIMessage(coloured, id="a"))
    assert spec is not None and spec["content"] == [
        {"type": "data", "kind": "text", "data": coloured}
    ]
    for part in spec["content"]:
        part_from_json(part)
    assert to_spec(AIMessage("tabs\tand\nnewlines", id="b"))["content"] == "tabs\tand\nnewlines"  # type: ignore[index]
