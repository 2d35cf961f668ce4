"""What a user does to persons: edits (name, merge, move, split, hide), face links, the
edit log and its undo, review and merge suggestions, a person's photos, and the audit."""
