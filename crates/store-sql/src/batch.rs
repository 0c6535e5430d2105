//! Group commit of message sends (issue 13). Every `insert_message` hands its message to a
//! writer task and waits for the answer; the task takes whatever is queued at that moment (up
//! to [`MAX_BATCH`] messages and [`MAX_BATCH_BYTES`] of content — never waiting for more, so a
//! lone send is not delayed), stores the batch in one transaction and answers each sender once
//! that transaction has committed (or failed: then every sender of the batch gets the error).
//! How a batch is written is `messages::write_batch`.
//!
//! SQLite has one writer task (it has one writer connection anyway). PostgreSQL has a few,
//! each owning the conversations whose id hashes to it, so one conversation's sends are always
//! in one writer's queue (its `seq` order and row lock stay as simple as before) while several
//! batches commit side by side.
//!
//! A writer is started on first use in the runtime of the caller and started again if that
//! runtime went away (tests run one runtime per test); `close` ends them.

use super::*;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// At most this many messages in one transaction.
pub(super) const MAX_BATCH: usize = 128;
/// A batch stops growing once its messages' content reaches this many bytes.
pub(super) const MAX_BATCH_BYTES: usize = 1 << 20;

/// One send waiting for its batch to commit.
pub(super) struct Job {
    pub(super) msg: NewMessage,
    pub(super) audit: Vec<AuditEntry>,
    pub(super) reply: oneshot::Sender<StoreResult<Inserted>>,
}

type Queue = mpsc::UnboundedSender<Job>;

/// The writer tasks of one store, by shard.
#[derive(Clone)]
pub(crate) struct Writers(Arc<[Mutex<Option<Queue>>]>);

impl std::fmt::Debug for Writers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Writers({})", self.0.len())
    }
}

impl Writers {
    /// `shards` writer tasks (at least one), each started on first use.
    pub(crate) fn new(shards: usize) -> Self {
        Self((0..shards.max(1)).map(|_| Mutex::new(None)).collect())
    }

    /// Ends the writer tasks once they have answered what is queued.
    pub(crate) fn close(&self) {
        for shard in self.0.iter() {
            shard.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    /// Stores `msg` in the next batch of its conversation's writer; answers once that batch
    /// committed.
    pub(super) async fn send(
        &self,
        s: &Backend,
        msg: NewMessage,
        audit: Vec<AuditEntry>,
    ) -> StoreResult<Inserted> {
        let (reply, answer) = oneshot::channel();
        let mut job = Job { msg, audit, reply };
        let shard = &self.0[shard_of(job.msg.conversation_id, self.0.len())];
        // A queue whose task is gone (its runtime ended) is replaced; the job comes back.
        for _ in 0..2 {
            let queue = {
                let mut slot = shard.lock().unwrap_or_else(|e| e.into_inner());
                match &*slot {
                    Some(q) if !q.is_closed() => q.clone(),
                    _ => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::spawn(write_loop(s.clone(), rx));
                        *slot = Some(tx.clone());
                        tx
                    }
                }
            };
            match queue.send(job) {
                Ok(()) => {
                    return answer.await.unwrap_or_else(|_| {
                        Err(StoreError::Backend("the message writer stopped".into()))
                    })
                }
                Err(mpsc::error::SendError(back)) => job = back,
            }
        }
        Err(StoreError::Backend(
            "no message writer could be started".into(),
        ))
    }
}

/// The writer that owns `conv`.
fn shard_of(conv: ConversationId, shards: usize) -> usize {
    let n = u64::try_from(shards).unwrap_or(1);
    // UUIDv7: the low half is random.
    usize::try_from(conv.0.as_u64_pair().1 % n).unwrap_or(0)
}

/// The content bytes a job adds to its batch.
fn size(job: &Job) -> usize {
    job.msg.content.len() + 256
}

/// Takes what is queued now into batches and writes them, until every sender is gone.
async fn write_loop(s: Backend, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut held: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    loop {
        let first = match held.pop_front() {
            Some(job) => job,
            None => match queue.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut bytes = size(&first);
        let mut batch = vec![first];
        let mut keys: std::collections::HashSet<(UserId, ConversationId, String)> =
            std::collections::HashSet::new();
        note_key(&mut keys, &batch[0]);
        let mut later = Vec::new();
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Some(job) = held.pop_front().or_else(|| queue.try_recv().ok()) else {
                break;
            };
            // A second use of one idempotency key waits for the next batch, where the
            // first use is stored and it replays.
            if note_key(&mut keys, &job) {
                bytes += size(&job);
                batch.push(job);
            } else {
                later.push(job);
            }
        }
        for job in later.into_iter().rev() {
            held.push_front(job);
        }
        let jobs: Vec<(NewMessage, Vec<AuditEntry>)>;
        let replies: Vec<oneshot::Sender<StoreResult<Inserted>>>;
        (jobs, replies) = batch
            .into_iter()
            .map(|j| ((j.msg, j.audit), j.reply))
            .unzip();
        let answers = super::messages::write_batch(&s, &jobs).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A sender that went away no longer waits; its message is stored all the same.
            let _ = reply.send(answer);
        }
    }
}

/// Notes the job's idempotency key; `false` when the batch already has it.
fn note_key(
    keys: &mut std::collections::HashSet<(UserId, ConversationId, String)>,
    job: &Job,
) -> bool {
    match &job.msg.idempotency {
        Some((key, _)) => keys.insert((
            job.msg.author_id,
            job.msg.conversation_id,
            key.as_str().to_owned(),
        )),
        None => true,
    }
}
