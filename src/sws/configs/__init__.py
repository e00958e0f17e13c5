"""Packaged study configs for `sws pipeline` and `sws compare` (``--config NAME``)."""
