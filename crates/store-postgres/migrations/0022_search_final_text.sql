-- MSG-6 with AGENT-3: an answer that is still streaming is not indexed. Its text so far is
-- written every 250 ms while it grows; the generated vector and its GIN entries were computed
-- again from the whole text at each write, and the search results would show half answers.
-- The vector is now empty (NULL) while the status is `streaming` and computed once from the
-- final text when the answer ends; every other message is indexed as before. Changing a
-- generated column's expression means dropping and adding it (and its index): every existing
-- message is indexed again by this migration.
ALTER TABLE messages DROP COLUMN search;

ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (
        CASE WHEN status = 'streaming' THEN NULL
             ELSE to_tsvector('simple', translate(COALESCE(content, ''), '<>', '  '))
        END
    ) STORED;

CREATE INDEX messages_search_idx ON messages USING GIN (search);
