-- rbv schema 24: the folder a pack's models were loaded from when it last ran (NULL: a
-- remote server's model), so a command that needs the models and is given no
-- --model-pack finds the library's own pack there instead of downloading buffalo_l.
ALTER TABLE model_packs ADD COLUMN folder text;
