//! Where time comes from. Services never call `Utc::now()` directly so tests can move time
//! (session expiry, invite expiry, idempotency windows) without sleeping. Periodic jobs wait on a
//! [`Ticker`] of the clock, so a test drives them by advancing a [`ManualClock`] and waits for
//! them with [`ManualClock::settled`] instead of sleeping.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Ticks at once, then every `period` of this clock's time (a late tick delays the next
    /// one). The default follows the wall clock.
    fn ticker(&self, period: std::time::Duration) -> Ticker {
        Ticker(TickerKind::Wall {
            period,
            interval: None,
        })
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the system clock is the one reader of the wall-clock time"
    )]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A periodic tick from a [`Clock`]: `tick().await` resolves when the next one is due.
#[derive(Debug)]
pub struct Ticker(TickerKind);

#[derive(Debug)]
enum TickerKind {
    /// Made on first use, inside the runtime.
    Wall {
        period: std::time::Duration,
        interval: Option<tokio::time::Interval>,
    },
    Manual {
        clock: Arc<Manual>,
        id: u64,
        period: Duration,
    },
}

impl Ticker {
    pub async fn tick(&mut self) {
        match &mut self.0 {
            TickerKind::Wall { period, interval } => {
                let interval = interval.get_or_insert_with(|| {
                    let mut i = tokio::time::interval(*period);
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    i
                });
                interval.tick().await;
            }
            TickerKind::Manual { clock, id, period } => loop {
                let mut changed = clock.changed.subscribe();
                {
                    let mut state = clock.lock();
                    let now = state.now;
                    let Some(ticker) = state.tickers.get_mut(id) else {
                        return;
                    };
                    if ticker.next <= now {
                        *ticker = TickerState {
                            next: now + *period,
                            waiting: false,
                        };
                        return;
                    }
                    if !ticker.waiting {
                        ticker.waiting = true;
                        clock.changed.send_replace(());
                    }
                }
                // The sender lives as long as `clock`: this only returns on a change.
                let _ = changed.changed().await;
            },
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let TickerKind::Manual { clock, id, .. } = &self.0 {
            clock.lock().tickers.remove(id);
            clock.changed.send_replace(());
        }
    }
}

/// A clock that only moves when told to; starts at the wall-clock time of its creation.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug)]
struct Manual {
    state: Mutex<ManualState>,
    /// Sent on every change of the time or of a ticker.
    changed: tokio::sync::watch::Sender<()>,
}

#[derive(Debug)]
struct ManualState {
    now: DateTime<Utc>,
    next_id: u64,
    tickers: HashMap<u64, TickerState>,
}

#[derive(Debug, Clone, Copy)]
struct TickerState {
    next: DateTime<Utc>,
    /// Its owner waits in `tick()` (rather than doing the work of the last tick).
    waiting: bool,
}

impl Manual {
    fn lock(&self) -> MutexGuard<'_, ManualState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self(Arc::new(Manual {
            state: Mutex::new(ManualState {
                now: SystemClock.now(),
                next_id: 0,
                tickers: HashMap::new(),
            }),
            changed: tokio::sync::watch::Sender::new(()),
        }))
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0.lock().now += by;
        self.0.changed.send_replace(());
    }

    /// Resolves once every ticker of this clock waits for a tick that is not yet due: each job
    /// whose time came (after an [`advance`](Self::advance)) has done its work.
    pub async fn settled(&self) {
        loop {
            let mut changed = self.0.changed.subscribe();
            {
                let state = self.0.lock();
                if state
                    .tickers
                    .values()
                    .all(|t| t.waiting && t.next > state.now)
                {
                    return;
                }
            }
            let _ = changed.changed().await;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().now
    }

    fn ticker(&self, period: std::time::Duration) -> Ticker {
        let mut state = self.0.lock();
        let id = state.next_id;
        state.next_id += 1;
        let next = state.now;
        state.tickers.insert(
            id,
            TickerState {
                next,
                waiting: false,
            },
        );
        drop(state);
        self.0.changed.send_replace(());
        Ticker(TickerKind::Manual {
            clock: self.0.clone(),
            id,
            period: Duration::from_std(period).unwrap_or(Duration::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job on a manual clock runs at once, then only when the clock is advanced past its
    /// period, and `settled` waits for its turn to end.
    #[tokio::test]
    async fn a_manual_ticker_follows_advances_and_settles() {
        let clock = ManualClock::default();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut ticker = clock.ticker(std::time::Duration::from_secs(60));
        let job = tokio::spawn({
            let runs = runs.clone();
            async move {
                loop {
                    ticker.tick().await;
                    tokio::task::yield_now().await;
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        let count = || runs.load(std::sync::atomic::Ordering::SeqCst);
        clock.settled().await;
        assert_eq!(count(), 1, "the first tick is at once");
        clock.advance(Duration::seconds(59));
        clock.settled().await;
        assert_eq!(count(), 1, "not yet due");
        clock.advance(Duration::seconds(1));
        clock.settled().await;
        assert_eq!(count(), 2);
        clock.advance(Duration::days(31));
        clock.settled().await;
        assert_eq!(count(), 3, "a late tick is one tick");
        job.abort();
        let _ = job.await;
        clock.settled().await;
        assert!(
            clock.0.lock().tickers.is_empty(),
            "a dropped ticker is gone"
        );
    }
}
