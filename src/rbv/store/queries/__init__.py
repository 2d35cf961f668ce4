"""The SQL: queries per table (``images``, ``persons``, ``assignments`` …) and the named
reads of one caller (``review_pages``: what ``rbv serve``'s pages show; ``stats``). Only
``jobs/`` and ``serve/`` import these (``tests/test_layout.py``)."""
