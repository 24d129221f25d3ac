"""What every feature client shares: the context it works in (:mod:`hub.core.context`),
input checks and event building (:mod:`hub.core.inputs`), and the one cursor format
(:mod:`hub.core.cursor`). Feature clients import this, never :mod:`hub.client`."""
