"""Memory windows: which messages of a thread go into the next prompt.

``last_n`` and ``first_last`` count messages; ``token_window`` fits as many of the newest
messages as a token budget allows, using a tokenizer you pass (``text -> tokens``) or a
rough estimate of four characters per token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from hub.sessions.models import Message

__all__ = ["Tokenizer", "estimate_tokens", "merge_first_last", "take_within_budget"]

Tokenizer = Callable[[str], int]

MESSAGE_OVERHEAD = 4  # role and separators, as chat formats count them


def estimate_tokens(text: str) -> int:
    """About four characters per token, plus a small per-message overhead."""
    return MESSAGE_OVERHEAD + (len(text) + 3) // 4


def merge_first_last(first: Sequence[Message], last: Sequence[Message]) -> list[Message]:
    """The first messages, then the last ones, each message once, in order."""
    seen = {m.seq for m in first}
    return [*first, *(m for m in last if m.seq not in seen)]


async def take_within_budget(
    newest_first: AsyncIterator[list[Message]], max_tokens: int, tokenizer: Tokenizer
) -> list[Message]:
    """The newest messages whose tokens fit ``max_tokens``, oldest first.

    Stops at the first message that does not fit (a window never skips a message).
    """
    taken: list[Message] = []
    used = 0
    async for page in newest_first:
        for message in page:
            cost = tokenizer(message.text)
            if used + cost > max_tokens:
                return taken[::-1]
            used += cost
            taken.append(message)
    return taken[::-1]
