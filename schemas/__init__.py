"""Event contracts: the ``.avsc`` files, the models that match them, and the codec."""
