"""The HTML that ``rbv site`` and ``rbv serve`` share: Jinja2 templates (``templates/``:
a common skeleton, ``site/`` and ``serve/`` pages), escaping, and the static site
writer."""
