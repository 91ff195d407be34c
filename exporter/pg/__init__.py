"""The PostgreSQL backend of the history, the token vault and the command audit.

Imported only when ``[exporter] db`` / ``--db`` is a ``postgresql://`` URL (``exporter.backend``),
so SQLite users never load psycopg. Install it with ``pip install 'carmetrics[postgres]'``.
"""
