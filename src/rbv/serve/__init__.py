"""``rbv serve``: a local web application to review and fix persons by clicking, over
the same edit functions as the ``rbv persons`` commands."""
