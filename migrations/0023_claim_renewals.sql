-- rbv schema 23: a worker renews its claims with each batch it takes, so a claim is held
-- on a lease (RBV_CLAIM_LEASE_S): one not renewed for that long is taken back by any
-- worker on any machine. claimed_at stays when the claim was made (`rbv stats` shows
-- both).
ALTER TABLE face_scans ADD COLUMN renewed_at timestamptz;
