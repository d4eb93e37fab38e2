-- What the embedding and the keyword index read: the chunk with its tables as rows and its config/code
-- blocks as "path › key: value" lines (retrieval/chunking.py `readable`). `text` stays what is shown and
-- cited. Rows ingested before this have no search_text and keep indexing their text.
ALTER TABLE chunks ADD COLUMN search_text text;
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', coalesce(title, '') || ' ' || coalesce(section, '')), 'A')
    || setweight(to_tsvector('english', coalesce(search_text, text)), 'B')) STORED;
CREATE INDEX chunks_tsv_gin ON chunks USING gin (tsv);
