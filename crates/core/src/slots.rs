//! A bounded number of concurrent runs of something costly — Argon2id hashing, a full-text
//! search — so a burst of them cannot take every core or database connection: a caller waits
//! for a slot up to a limit, then is told the server is busy (503 with `Retry-After`).

use crate::error::ServiceError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct Slots {
    free: Arc<Semaphore>,
    wait: Duration,
}

impl Slots {
    /// `count` slots (at least one); a caller waits up to `wait` for one.
    #[must_use]
    pub fn new(count: usize, wait: Duration) -> Self {
        Self {
            free: Arc::new(Semaphore::new(count.max(1))),
            wait,
        }
    }

    /// A slot, held until the permit is dropped; `Busy` when none came free in time.
    pub async fn take(&self) -> Result<OwnedSemaphorePermit, ServiceError> {
        tokio::time::timeout(self.wait, self.free.clone().acquire_owned())
            .await
            .map_err(|_| ServiceError::Busy)?
            .map_err(|_| ServiceError::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_waits_for_a_slot_then_is_told_busy() {
        let slots = Slots::new(2, Duration::from_millis(50));
        let (a, _b) = (slots.take().await.unwrap(), slots.take().await.unwrap());
        assert!(matches!(slots.take().await, Err(ServiceError::Busy)));
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a);
        assert!(
            waiting.await.unwrap(),
            "a freed slot goes to the one waiting"
        );
        assert_eq!(Slots::new(0, Duration::ZERO).free.available_permits(), 1);
    }
}
