-- MSG-6: full-text search of messages. A generated column holds each message's vector
-- (`simple` configuration: no stemming or stop words, the same for every language), so it is
-- written by the very statement that writes the content — group-committed sends, edits,
-- tombstones (content NULL: an empty vector), retention and erasure — in its transaction.
-- Angle brackets become spaces first: PostgreSQL's parser would otherwise read `<…>` in plain
-- text as markup and drop it (a message about `<script>alert(1)</script>` is text to search,
-- as it is on SQLite). Adding the column computes it for every existing message.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', translate(COALESCE(content, ''), '<>', '  '))) STORED;

CREATE INDEX messages_search_idx ON messages USING GIN (search);
