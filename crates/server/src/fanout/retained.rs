//! The retained-event buffer both fan-outs answer RESUME from: the events of the last resume
//! window, in position order, each stamped with the time it was retained. Time comes from the
//! `Clock` (never `Instant::now()`), so a test moves expiry forward without sleeping.
//!
//! It holds every event at a position `>= from` that was pushed, until the event is older than
//! the window or the buffer holds `max` events; a slice is answered only when all of it is
//! here, so a caller can tell "nothing happened" from "it is gone".

use super::Delivered;
use chrono::{DateTime, Utc};
use conclave_core::clock::Clock;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub struct Retained {
    clock: Arc<dyn Clock>,
    window: chrono::Duration,
    /// Bounds the buffer even when events come faster than the window ages them out.
    max: usize,
    events: VecDeque<(DateTime<Utc>, Delivered)>,
    /// Every event pushed at a position `>= from` is still here.
    from: u64,
}

impl Retained {
    /// An empty buffer whose first event will be at position `from`.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>, window: Duration, max: usize, from: u64) -> Self {
        Self {
            clock,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            max,
            events: VecDeque::new(),
            from,
        }
    }

    fn evict(&mut self, now: DateTime<Utc>) {
        while self.events.len() > self.max
            || self
                .events
                .front()
                .is_some_and(|(at, _)| now - *at > self.window)
        {
            if let Some((_, d)) = self.events.pop_front() {
                self.from = d.position + 1;
            }
        }
    }

    /// Retains the next event (positions increase).
    pub fn push(&mut self, d: Delivered) {
        let now = self.clock.now();
        self.events.push_back((now, d));
        self.evict(now);
    }

    /// Starts over at `from` (after a gap, or on another stream).
    pub fn reset(&mut self, from: u64) {
        self.events.clear();
        self.from = from;
    }

    /// The events with `after < position <= upto`, in order, when all of them are here; an
    /// empty range is always here.
    pub fn slice(&mut self, after: u64, upto: u64) -> Option<Vec<Delivered>> {
        if after >= upto {
            return Some(Vec::new());
        }
        self.evict(self.clock.now());
        if after + 1 < self.from || self.events.back().is_none_or(|(_, d)| d.position < upto) {
            return None;
        }
        let start = self.events.partition_point(|(_, d)| d.position <= after);
        Some(
            self.events
                .range(start..)
                .map(|(_, d)| d)
                .take_while(|d| d.position <= upto)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::WireEvent;
    use conclave_core::clock::ManualClock;
    use conclave_core::event::Event;
    use conclave_core::UserId;

    fn event(position: u64) -> Delivered {
        Delivered {
            position,
            event: Arc::new(WireEvent::from_event(&Event::user(
                "X",
                UserId::new(),
                position,
            ))),
        }
    }

    fn positions(v: Option<Vec<Delivered>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|d| d.position).collect())
    }

    /// A buffer of at most `max` events on a manual clock, holding `held`.
    fn holding(max: usize, held: std::ops::RangeInclusive<u64>) -> Retained {
        let clock = Arc::new(ManualClock::default());
        let mut buffer = Retained::new(clock, Duration::from_secs(60), max, *held.start());
        for p in held {
            buffer.push(event(p));
        }
        buffer
    }

    #[test]
    fn answers_only_what_it_holds_entirely() {
        let mut buffer = holding(100, 11..=20);
        assert_eq!(positions(buffer.slice(10, 20)), Some((11..=20).collect()));
        assert_eq!(positions(buffer.slice(14, 16)), Some(vec![15, 16]));
        assert_eq!(positions(buffer.slice(16, 16)), Some(vec![]));
        assert_eq!(positions(buffer.slice(9, 20)), None, "11 is the first");
        assert_eq!(positions(buffer.slice(15, 21)), None, "21 has not come");
        // A gap starts it over.
        buffer.reset(30);
        buffer.push(event(30));
        assert_eq!(positions(buffer.slice(29, 30)), Some(vec![30]));
        assert_eq!(positions(buffer.slice(20, 30)), None);
    }

    #[test]
    fn events_older_than_the_window_leave_on_the_clock_without_sleeping() {
        let clock = Arc::new(ManualClock::default());
        let mut buffer = Retained::new(clock.clone(), Duration::from_secs(60), 100, 1);
        buffer.push(event(1));
        clock.advance(chrono::Duration::seconds(40));
        buffer.push(event(2));
        assert_eq!(positions(buffer.slice(0, 2)), Some(vec![1, 2]));
        // 61 s after the first, 21 s after the second: only the first is too old.
        clock.advance(chrono::Duration::seconds(21));
        assert_eq!(positions(buffer.slice(0, 2)), None, "1 aged out");
        assert_eq!(positions(buffer.slice(1, 2)), Some(vec![2]));
        clock.advance(chrono::Duration::seconds(40));
        assert_eq!(positions(buffer.slice(1, 2)), None, "2 aged out too");
        assert_eq!(buffer.from, 3);
        assert_eq!(positions(buffer.slice(2, 2)), Some(vec![]));
    }

    #[test]
    fn the_size_bound_holds_when_events_come_faster_than_they_age() {
        let mut buffer = holding(3, 1..=5);
        assert_eq!(positions(buffer.slice(1, 5)), None);
        assert_eq!(positions(buffer.slice(2, 5)), Some(vec![3, 4, 5]));
    }
}
