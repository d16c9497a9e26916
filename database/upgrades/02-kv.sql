-- v1 -> v2: Key-value store for bridge-wide secrets
CREATE TABLE kv (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
