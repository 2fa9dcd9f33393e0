"""Tables, migrations and the database handle (SQLite by default, PostgreSQL by URL)."""
