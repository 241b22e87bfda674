-- Run by the postgres image once, when it initialises an empty data directory. POSTGRES_DB makes
-- the `temporal` database; Temporal's visibility store needs a second one. The schemas inside
-- both are made by the temporal-schema service (deploy/scripts/temporal-schema.sh).
CREATE DATABASE temporal_visibility;
