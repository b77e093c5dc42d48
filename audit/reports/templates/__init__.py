"""Jinja2 templates of the reports (data files; a package so that wheels ship them)."""
