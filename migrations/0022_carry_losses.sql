-- rbv schema 22: what a pixel edit's carry could not keep is written in the carry's own
-- transaction, one row per line, and deleted only once a run has said it. A run killed
-- after carrying a photo (kill -9, a crash) used to lose that photo's lines with its
-- memory; now the next `rbv index` or `rbv embed` says them.
CREATE TABLE carry_losses (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pack_id    integer     NOT NULL REFERENCES model_packs (id) ON DELETE CASCADE,
    line       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX carry_losses_pack ON carry_losses (pack_id, id);
