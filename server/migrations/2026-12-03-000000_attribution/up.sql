-- A pause's attribution beyond its culprits: the cause (a machine freeze, or the server
-- alone held up) with its evidence, the window the blame was taken from, the victims and
-- the process groups. A pmon.v1.Event with only those fields set; NULL for escalations
-- and for pauses recorded before attribution existed.
ALTER TABLE events ADD COLUMN attribution BLOB;
