"""The pipelines behind the commands, the only callers of the store's queries and of
``cluster/``, in rooms by what the user does:

- ``library/``: find, catalogue, detect and embed photos; enrich, dedup, prune, stats;
- ``grouping/``: cluster faces into persons, refine facesets, evaluate on labels;
- ``persons/``: a person's edits, face links, the edit log and undo, review, suggestions,
  photos and the audit;
- ``exchange/``: what goes out of rbv and comes back in: XMP, folders, the static site,
  face-swap bundles, Immich.

``recording`` (runs), ``reporting`` (progress) and ``out_lock`` serve them all."""
