"""Remote mode: the ``Hub`` API over a hub's HTTP API (``HUB_URL`` and ``HUB_API_KEY``)."""
