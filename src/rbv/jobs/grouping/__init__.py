"""Grouping faces into persons (``cluster``, full and incremental), refining persons into
facesets (``refine``), and measuring a grouping against labels (``eval``)."""
