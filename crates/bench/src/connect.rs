//! Opening every gateway client, bounded in concurrency and time, and closing them again.

use crate::api::World;
use crate::gateway::{self, Shared, Spec, Target};
use crate::layout::Layout;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

pub struct Connected {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    pub ready: u64,
    pub ready_per_group: Vec<u64>,
    pub secs: f64,
}

impl Connected {
    /// Tells every client to close and waits (bounded) for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if waited.is_err() {
            eprintln!("note: some clients did not close within 20 s; aborting them");
            self.tasks.abort_all();
        }
    }
}

pub async fn connect_all(
    layout: &Layout,
    world: &World,
    target: &Arc<Target>,
    shared: &Arc<Shared>,
    sources: &[IpAddr],
    concurrency: usize,
) -> Connected {
    let n = layout.conns.len();
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for (index, &(user, group)) in layout.conns.iter().enumerate() {
        let spec = Spec {
            index,
            token: world.users[user].token.clone(),
            group,
            source: (!sources.is_empty()).then(|| sources[index % sources.len()]),
        };
        tasks.spawn(gateway::run(
            spec,
            target.clone(),
            shared.clone(),
            slots.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(ready_tx);
    let mut ready = 0u64;
    let mut failed = 0u64;
    let mut ready_per_group = vec![0u64; layout.groups.len()];
    let mut progress = tokio::time::interval(Duration::from_secs(2));
    progress.tick().await;
    // Every client reports exactly once, within its bounded connect time.
    while ready + failed < n as u64 {
        tokio::select! {
            got = ready_rx.recv() => match got {
                Some(Some(g)) => { ready += 1; ready_per_group[g] += 1; }
                Some(None) => failed += 1,
                None => break,
            },
            _ = progress.tick() => eprintln!("  connecting: {ready} ready, {failed} failed of {n}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("  connected: {ready} ready, {failed} failed of {n} in {secs:.1}s");
    Connected {
        tasks,
        stop,
        ready,
        ready_per_group,
        secs,
    }
}
