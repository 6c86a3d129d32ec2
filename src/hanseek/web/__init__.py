"""Server-rendered pages (Jinja2) and static files; one page per feature."""
