"""JSON Schemas of the report kinds (data files; a package so that wheels ship them)."""
