"""Orchestration: the pipelines behind ``index`` and ``embed`` (discover, catalogue,
claim, decode, analyze, store), reporting progress through a :class:`Reporter`."""
