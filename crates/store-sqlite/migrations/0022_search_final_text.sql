-- MSG-6 with AGENT-3: an answer that is still streaming is not indexed. Its text so far is
-- written every 250 ms while it grows; re-indexing the whole text each time cost the writer a
-- delete and an insert of the growing text per write, and the search results would show half
-- answers. The answer is indexed once, with its final text, when it ends (complete, failed or
-- stopped: the status leaves `streaming`), and every later change (an edit, a tombstone) is
-- indexed as before.
DROP TRIGGER message_search_insert;
DROP TRIGGER message_search_update;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
    WHEN new.content IS NOT NULL AND new.deleted_at IS NULL AND new.status <> 'streaming'
BEGIN
    INSERT INTO message_search (rowid, content, message_id)
        VALUES (new.rowid, new.content, new.id);
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF content, deleted_at, status ON messages
    WHEN NOT (old.status = 'streaming' AND new.status = 'streaming')
BEGIN
    DELETE FROM message_search WHERE rowid = old.rowid;
    INSERT INTO message_search (rowid, content, message_id)
        SELECT new.rowid, new.content, new.id
        WHERE new.content IS NOT NULL AND new.deleted_at IS NULL AND new.status <> 'streaming';
END;

-- Answers streaming when this migration runs were indexed by the old triggers: drop them; they
-- are indexed when they end.
DELETE FROM message_search WHERE rowid IN (SELECT rowid FROM messages WHERE status = 'streaming');
