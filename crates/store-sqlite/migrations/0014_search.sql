-- MSG-6: full-text search of messages. An FTS5 table holds each live message's content under
-- the message's rowid (and its id, which the search query checks as well); triggers keep it in
-- the transaction of every statement that writes `messages` — group-committed sends, edits,
-- tombstones, retention's deletions, erasure and conversation deletion (the cascade fires the
-- delete trigger). A tombstoned message (content NULL or deleted_at set) has no entry.
CREATE VIRTUAL TABLE message_search USING fts5(
    content,
    message_id UNINDEXED,
    tokenize = 'unicode61'
);

INSERT INTO message_search (rowid, content, message_id)
    SELECT rowid, content, id FROM messages WHERE content IS NOT NULL AND deleted_at IS NULL;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
    WHEN new.content IS NOT NULL AND new.deleted_at IS NULL
BEGIN
    INSERT INTO message_search (rowid, content, message_id)
        VALUES (new.rowid, new.content, new.id);
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF content, deleted_at ON messages
BEGIN
    DELETE FROM message_search WHERE rowid = old.rowid;
    INSERT INTO message_search (rowid, content, message_id)
        SELECT new.rowid, new.content, new.id
        WHERE new.content IS NOT NULL AND new.deleted_at IS NULL;
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM message_search WHERE rowid = old.rowid;
END;
