"""``hub.keys``: API keys, who holds them and what they may do."""

from hub.access.keys import ApiKey, KeysClient, NewKey, Principal, parse_token

__all__ = ["ApiKey", "KeysClient", "NewKey", "Principal", "parse_token"]
