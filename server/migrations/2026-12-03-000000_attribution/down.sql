ALTER TABLE events DROP COLUMN attribution;
