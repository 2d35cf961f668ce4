-- A model pack is found by name (`--model-pack NAME`), so names must be unique. Older
-- rbv could register a second pack under a name in use (a remote server's model was
-- named like the local pack): the oldest keeps the name, later ones get "#<id>".
UPDATE model_packs p SET name = p.name || '#' || p.id
WHERE EXISTS (SELECT 1 FROM model_packs q WHERE q.name = p.name AND q.id < p.id);
CREATE UNIQUE INDEX model_packs_name_key ON model_packs (name);
