-- rbv schema 31: a face's short edge (`face_short`, schema 1) is computed when it is read,
-- no longer stored, on PostgreSQL 18 and later. Its values are the same.
--
-- PostgreSQL 18 prepares a stored generated column's expression again for every row of
-- an UPDATE that does not set the columns it is computed from: its executor keeps the
-- prepared expressions only when at least one of them is needed, so with none it
-- starts over at the next row (ExecComputeStoredGenerated → ExecInitGenerated, which
-- reads the expression from the catalogue's text each time). Every UPDATE of
-- face_detections paid it: a run writing persons, an edit moving faces. Measured at
-- 1,018,000 faces (a first `rbv cluster --full`'s write of every face's person, in
-- rolled-back transactions, alternated): 14 % of the statement's time in a profile;
-- 19.8 / 21.7 s against 23.0 / 24.1 s.
--
-- A virtual column is not stored, so there is nothing to prepare when a row is written.
-- Earlier servers (rbv can run on one given by DATABASE_URL) have no virtual columns,
-- and prepare the stored one once per statement: their column stays as it is.

DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 180000 THEN
        ALTER TABLE face_detections DROP COLUMN face_short;
        ALTER TABLE face_detections ADD COLUMN face_short real
            GENERATED ALWAYS AS (least(x2 - x1, y2 - y1)) VIRTUAL;
    END IF;
END $$;
