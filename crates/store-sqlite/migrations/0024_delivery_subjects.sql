-- DATA-5 and DATA-6 reach the webhook delivery log (HOOK-2). A delivery's body is the REST object
-- of its event, so a message's text and its author, or a member's name, outlived the message's
-- deletion, its purge by retention and its author's erasure in `webhook_deliveries.payload`, and
-- a redelivery could send them again. Each delivery now names what its body is about: the message
-- (`message_id`, for message events) and the person (`user_id`: a message's author, a member or
-- participant). Deleting the message or erasing the person redacts the delivery: the body is
-- emptied, `redacted_at` set, and one still queued is given up (failed, `last_error`
-- "redacted"); deleting the conversation, or a retention purge, removes the deliveries of the
-- messages it removes.
-- Rows queued before this migration are linked from their bodies, and those whose message is
-- already deleted or gone, or whose person is erased, are redacted now.
ALTER TABLE webhook_deliveries ADD COLUMN message_id BLOB;
ALTER TABLE webhook_deliveries ADD COLUMN user_id BLOB;
ALTER TABLE webhook_deliveries ADD COLUMN redacted_at TEXT;

UPDATE webhook_deliveries SET
    message_id = CASE WHEN event_type LIKE 'message.%'
        THEN unhex(replace(json_extract(payload, '$.data.id'), '-', '')) END,
    user_id = unhex(replace(coalesce(json_extract(payload, '$.data.author.id'),
        json_extract(payload, '$.data.user.id')), '-', ''))
WHERE json_valid(payload);

UPDATE webhook_deliveries SET payload = '',
    redacted_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'),
    last_error = CASE WHEN status = 'pending' THEN 'redacted' ELSE last_error END,
    finished_at = coalesce(finished_at, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END,
    lease_owner = NULL, lease_until = NULL
WHERE (event_type IN ('message.created', 'message.updated') AND message_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM messages m
                       WHERE m.id = webhook_deliveries.message_id AND m.deleted_at IS NULL))
   OR user_id IN (SELECT id FROM users WHERE erased_at IS NOT NULL);

CREATE INDEX webhook_deliveries_message_idx ON webhook_deliveries (message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (user_id)
    WHERE user_id IS NOT NULL;
