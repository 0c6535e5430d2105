//! The SSRF guard against real sockets (HOOK-3). Hostile targets — spelled as addresses, reached
//! through DNS names, or through redirects — never reach a listener; through the allowlist the
//! guard fetches, follows allowed redirects and enforces its size and time caps. A `Tripwire`
//! counts every connection made to it, so "never reached" is measured, not assumed.

use crate::outbound::{
    AddressClass, Limits, Lookup, OutboundError, OutboundGuard, OutboundPolicy, OutboundRequest,
    Refusal,
};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use axum::Router;
use futures::StreamExt;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A listener that records the peer of every connection it accepts.
struct Tripwire {
    addr: SocketAddr,
    peers: tokio::sync::watch::Receiver<Vec<SocketAddr>>,
}

impl Tripwire {
    async fn bind(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, peers) = tokio::sync::watch::channel(Vec::new());
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                tx.send_modify(|p| p.push(peer));
                drop(stream);
            }
        });
        Self { addr, peers }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections reached the listener before now. Connects a probe and waits until
    /// it is accepted: accepts come in arrival order, so every earlier connection is counted.
    async fn connections_so_far(&self) -> usize {
        let probe = TcpStream::connect(self.addr).await.unwrap();
        let me = probe.local_addr().unwrap();
        let mut peers = self.peers.clone();
        let seen = peers.wait_for(|p| p.contains(&me)).await.unwrap();
        seen.iter().position(|p| *p == me).unwrap()
    }
}

/// A fixed name table that counts lookups.
#[derive(Default)]
struct TableLookup {
    names: HashMap<String, Vec<IpAddr>>,
    calls: AtomicUsize,
}

impl TableLookup {
    fn new(entries: &[(&str, &[&str])]) -> Arc<Self> {
        Arc::new(Self {
            names: entries
                .iter()
                .map(|(name, ips)| {
                    let ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
                    ((*name).to_owned(), ips)
                })
                .collect(),
            calls: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Lookup for TableLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.names
            .get(host)
            .cloned()
            .ok_or_else(|| std::io::Error::other("no such name"))
    }
}

fn guard(allow: &[&str], ports: &[u16], lookup: Arc<dyn Lookup>) -> OutboundGuard {
    let policy = OutboundPolicy {
        allow_cidrs: allow.iter().map(|c| c.parse().unwrap()).collect(),
        extra_ports: ports.to_vec(),
        ..OutboundPolicy::default()
    };
    OutboundGuard::with_lookup(policy, lookup).unwrap()
}

fn addr(class: AddressClass) -> OutboundError {
    OutboundError::Refused(Refusal::Address(class))
}

/// Names a hostile DNS answers with private addresses.
const HOSTILE_NAMES: &[(&str, &[&str])] = &[
    ("internal.example.com", &["127.0.0.1"]),
    ("metadata.google.internal", &["169.254.169.254"]),
    ("imds.example.com", &["fd00:ec2::254"]),
    ("mixed.example.com", &["93.184.215.14", "127.0.0.1"]),
    ("v6.example.com", &["::1"]),
    ("mapped.example.com", &["::ffff:127.0.0.1"]),
    ("nat64.example.com", &["64:ff9b::7f00:1"]),
    ("rfc1918.example.com", &["10.0.0.5"]),
    ("cgnat.example.com", &["100.64.1.1"]),
    ("zero.example.com", &["0.0.0.0"]),
];

#[tokio::test]
async fn hostile_targets_never_reach_a_listener() {
    use AddressClass::*;
    let wire = Tripwire::bind("127.0.0.1").await;
    let p = wire.port();
    let lookup = TableLookup::new(HOSTILE_NAMES);
    // The tripwire's port is allowed, so what refuses each target is its address.
    let g = guard(&[], &[p], lookup.clone());
    let r = |rule: Refusal| OutboundError::Refused(rule);
    let table: Vec<(String, OutboundError)> = [
        // Loopback in every spelling (the tripwire listens there).
        ("http://127.0.0.1:{p}/", addr(Loopback)),
        ("http://127.1:{p}/", addr(Loopback)),
        ("http://127.0.1:{p}/", addr(Loopback)),
        ("http://2130706433:{p}/", addr(Loopback)),
        ("http://0x7f000001:{p}/", addr(Loopback)),
        ("http://0x7f.0.0.1:{p}/", addr(Loopback)),
        ("http://0177.0.0.1:{p}/", addr(Loopback)),
        ("http://017700000001:{p}/", addr(Loopback)),
        ("http://127.0.0.1.:{p}/", addr(Loopback)),
        ("http://127.255.255.254:{p}/", addr(Loopback)),
        ("http://[::1]:{p}/", addr(Loopback)),
        ("http://[0:0:0:0:0:0:0:1]:{p}/", addr(Loopback)),
        ("http://[::ffff:127.0.0.1]:{p}/", addr(Loopback)),
        ("http://[::ffff:7f00:1]:{p}/", addr(Loopback)),
        ("http://[64:ff9b::127.0.0.1]:{p}/", addr(Loopback)),
        ("http://[::127.0.0.1]:{p}/", addr(Reserved)),
        ("http://[::ffff:0:7f00:1]:{p}/", addr(Reserved)),
        ("http://0.0.0.0:{p}/", addr(Unspecified)),
        ("http://0:{p}/", addr(Unspecified)),
        ("http://[::]:{p}/", addr(Unspecified)),
        ("http://0.0.0.1:{p}/", addr(ThisNetwork)),
        ("http://localhost:{p}/", r(Refusal::LocalName)),
        ("http://LOCALHOST.:{p}/", r(Refusal::LocalName)),
        ("http://hooks.localhost:{p}/", r(Refusal::LocalName)),
        // Cloud metadata, every spelling of 169.254.169.254 and its IPv6 cousins.
        ("http://169.254.169.254/latest/meta-data/", addr(LinkLocal)),
        ("http://2852039166/", addr(LinkLocal)),
        ("http://0251.0376.0251.0376/", addr(LinkLocal)),
        ("http://0xa9fea9fe/", addr(LinkLocal)),
        ("http://0xa9.0xfe.0xa9.0xfe/", addr(LinkLocal)),
        ("http://169.254.43518/", addr(LinkLocal)),
        ("http://169.16689662/", addr(LinkLocal)),
        ("http://[::ffff:169.254.169.254]/", addr(LinkLocal)),
        ("http://[::ffff:a9fe:a9fe]/", addr(LinkLocal)),
        ("http://[64:ff9b::a9fe:a9fe]/", addr(LinkLocal)),
        ("http://[2002:a9fe:a9fe::]/", addr(Transition)),
        ("http://[64:ff9b:1::a9fe:a9fe]/", addr(Transition)),
        ("http://[fd00:ec2::254]/", addr(UniqueLocal)),
        ("http://[fe80::1]/", addr(LinkLocal)),
        ("http://100.100.100.200/", addr(SharedAddressSpace)),
        // Private, shared, special and group ranges.
        ("http://10.0.0.1/", addr(Private)),
        ("http://172.16.0.1/", addr(Private)),
        ("http://172.31.255.255/", addr(Private)),
        ("http://192.168.1.1/", addr(Private)),
        ("http://100.64.0.1/", addr(SharedAddressSpace)),
        ("http://192.0.0.1/", addr(ProtocolAssignment)),
        ("http://192.0.2.1/", addr(Documentation)),
        ("http://198.51.100.7/", addr(Documentation)),
        ("http://203.0.113.9/", addr(Documentation)),
        ("http://198.18.0.1/", addr(Benchmarking)),
        ("http://192.88.99.1/", addr(Transition)),
        ("http://224.0.0.1/", addr(Multicast)),
        ("http://239.255.255.250/", addr(Multicast)),
        ("http://240.0.0.1/", addr(Reserved)),
        ("http://255.255.255.255/", addr(Broadcast)),
        ("http://[ff02::1]/", addr(Multicast)),
        ("http://[fc00::1]/", addr(UniqueLocal)),
        ("http://[fec0::1]/", addr(SiteLocal)),
        ("http://[2001:db8::1]/", addr(Documentation)),
        ("http://[2001::1]/", addr(ProtocolAssignment)),
        ("http://[100::1]/", addr(Reserved)),
        // DNS names that answer with private addresses.
        ("http://internal.example.com:{p}/", addr(Loopback)),
        ("http://mixed.example.com:{p}/", addr(Loopback)),
        ("http://v6.example.com:{p}/", addr(Loopback)),
        ("http://mapped.example.com:{p}/", addr(Loopback)),
        ("http://nat64.example.com:{p}/", addr(Loopback)),
        ("http://zero.example.com:{p}/", addr(Unspecified)),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            addr(LinkLocal),
        ),
        ("https://imds.example.com/", addr(UniqueLocal)),
        ("http://rfc1918.example.com/", addr(Private)),
        ("http://cgnat.example.com/", addr(SharedAddressSpace)),
        // URL rules.
        ("gopher://127.0.0.1:{p}/", r(Refusal::Scheme)),
        ("dict://127.0.0.1:{p}/", r(Refusal::Scheme)),
        ("file:///etc/passwd", r(Refusal::Scheme)),
        ("ftp://internal.example.com:{p}/", r(Refusal::Scheme)),
        (
            "http://user:pw@internal.example.com:{p}/",
            r(Refusal::Credentials),
        ),
        (
            "http://127.0.0.1:{p}@internal.example.com:{p}/",
            r(Refusal::Credentials),
        ),
        ("http://internal.example.com:{p}/#x", r(Refusal::Fragment)),
        ("http://internal.example.com:22/", r(Refusal::Port)),
        ("http://internal.example.com:6379/", r(Refusal::Port)),
    ]
    .into_iter()
    .map(|(t, e)| (t.replace("{p}", &p.to_string()), e))
    .collect();
    assert!(table.len() >= 40);
    for (url, want) in &table {
        assert_eq!(g.check(url).await.as_ref(), Err(want), "check {url}");
        let sent = g.send(OutboundRequest::get(url.clone())).await;
        assert_eq!(sent.unwrap_err(), *want, "send {url}");
    }
    // A name the resolver does not know fails without a connection either.
    assert_eq!(
        g.send(OutboundRequest::get("http://nowhere.example.com/"))
            .await
            .unwrap_err(),
        OutboundError::Unresolvable
    );
    assert_eq!(wire.connections_so_far().await, 0);
    // The tripwire does see a guard that is allowed through (so the zero above means something).
    let allowed = guard(&["127.0.0.1/32"], &[p], lookup);
    let e = allowed
        .send(OutboundRequest::get(format!("http://2130706433:{p}/")))
        .await
        .unwrap_err();
    assert!(matches!(e, OutboundError::Transport(_)), "{e:?}");
    // (The client may retry a connection that closed before answering.)
    assert!(wire.connections_so_far().await >= 1);
}

/// Answers with a public address first and loopback afterwards (DNS rebinding).
struct Rebinding(AtomicUsize);

#[async_trait::async_trait]
impl Lookup for Rebinding {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n == 0 { "93.184.215.14" } else { "127.0.0.1" }
            .parse()
            .unwrap()])
    }
}

#[tokio::test]
async fn a_name_that_rebinds_after_the_check_is_refused_at_the_fetch() {
    let wire = Tripwire::bind("127.0.0.1").await;
    let p = wire.port();
    let lookup = Arc::new(Rebinding(AtomicUsize::new(0)));
    let g = guard(&[], &[p], lookup.clone());
    let url = format!("http://rebind.example.com:{p}/hook");
    g.check(&url).await.unwrap();
    let e = g.send(OutboundRequest::get(url)).await.unwrap_err();
    assert_eq!(e, addr(AddressClass::Loopback));
    // One lookup for the check, one for the fetch, whose answer is the one connected to.
    assert_eq!(lookup.0.load(Ordering::SeqCst), 2);
    assert_eq!(wire.connections_so_far().await, 0);
}

#[derive(Clone)]
struct Upstream {
    hits: Arc<AtomicUsize>,
    targets: Arc<Vec<String>>,
}

async fn serve(ip: &str, router: Router) -> u16 {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    port
}

fn upstream_router(state: Upstream) -> Router {
    async fn count(State(s): State<Upstream>, body: String) -> String {
        s.hits.fetch_add(1, Ordering::SeqCst);
        format!("echo:{body}")
    }
    async fn to(State(s): State<Upstream>, Path(i): Path<usize>) -> Redirect {
        s.hits.fetch_add(1, Ordering::SeqCst);
        Redirect::temporary(&s.targets[i])
    }
    Router::new()
        .route("/ok", any(count))
        .route("/to/{i}", get(to))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route("/big", get(|| async { vec![b'x'; 2 * 1024 * 1024] }))
        .route(
            "/endless",
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures::stream::repeat_with(move || {
                    Ok::<_, std::convert::Infallible>(chunk.clone())
                });
                Body::from_stream(stream)
            }),
        )
        .route(
            "/hang",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        )
        .route(
            "/slow-body",
            get(|| async {
                let stream = futures::stream::once(async {
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b"start"))
                })
                .chain(futures::stream::pending());
                Body::from_stream(stream).into_response()
            }),
        )
        .with_state(state)
}

#[tokio::test]
async fn through_the_allowlist_fetches_follow_allowed_redirects_and_stop_at_refused_ones() {
    // 127.0.0.2 is loopback too, but outside the allowlist: the tripwire stands there.
    let wire = Tripwire::bind("127.0.0.2").await;
    let t = wire.port();
    let b_hits = Arc::new(AtomicUsize::new(0));
    let b = serve(
        "127.0.0.1",
        upstream_router(Upstream {
            hits: b_hits.clone(),
            targets: Arc::new(vec![]),
        }),
    )
    .await;
    let targets = vec![
        format!("http://127.0.0.1:{b}/ok"),
        format!("http://hooks.example.test:{b}/ok"),
        format!("http://127.0.0.2:{t}/"),
        format!("http://internal.example.test:{t}/"),
        format!("http://localhost:{b}/ok"),
        format!("http://[::1]:{t}/"),
        format!("http://[::ffff:127.0.0.2]:{t}/"),
        "http://10.0.0.1/".to_owned(),
        "http://2852039166/latest/meta-data/".to_owned(),
        format!("ftp://127.0.0.1:{b}/"),
        format!("http://user:pw@127.0.0.1:{b}/ok"),
        "http://127.0.0.1:1/ok".to_owned(),
    ];
    let a_hits = Arc::new(AtomicUsize::new(0));
    let a = serve(
        "127.0.0.1",
        upstream_router(Upstream {
            hits: a_hits.clone(),
            targets: Arc::new(targets),
        }),
    )
    .await;
    let lookup = TableLookup::new(&[
        ("hooks.example.test", &["127.0.0.1"]),
        ("internal.example.test", &["127.0.0.2"]),
    ]);
    let g = guard(&["127.0.0.1/32"], &[a, b, t], lookup);

    // Allowed: directly, by name, and through a redirect to the second server.
    let direct = g
        .send(OutboundRequest::post(
            format!("http://127.0.0.1:{a}/ok"),
            Default::default(),
            "ping".into(),
        ))
        .await
        .unwrap();
    assert_eq!(direct.status, 200);
    assert_eq!(&direct.body[..], b"echo:ping");
    let by_name = g
        .send(OutboundRequest::get(format!(
            "http://hooks.example.test:{a}/ok"
        )))
        .await
        .unwrap();
    assert_eq!(&by_name.body[..], b"echo:");
    for i in [0, 1] {
        let followed = g
            .send(OutboundRequest::get(format!("http://127.0.0.1:{a}/to/{i}")))
            .await
            .unwrap();
        assert_eq!(followed.status, 200);
        assert_eq!(followed.final_url.port(), Some(b));
    }
    assert_eq!(b_hits.load(Ordering::SeqCst), 2);

    // Refused hops: the first server answers, nothing after it is reached.
    use AddressClass::*;
    let refused = [
        (2, addr(Loopback)),
        (3, addr(Loopback)),
        (4, OutboundError::Refused(Refusal::LocalName)),
        (5, addr(Loopback)),
        (6, addr(Loopback)),
        (7, addr(Private)),
        (8, addr(LinkLocal)),
        (9, OutboundError::Refused(Refusal::Scheme)),
        (10, OutboundError::Refused(Refusal::Credentials)),
        (11, OutboundError::Refused(Refusal::Port)),
    ];
    let before = a_hits.load(Ordering::SeqCst);
    for (i, want) in &refused {
        let e = g
            .send(OutboundRequest::get(format!("http://127.0.0.1:{a}/to/{i}")))
            .await
            .unwrap_err();
        assert_eq!(e, *want, "redirect {i}");
    }
    assert_eq!(a_hits.load(Ordering::SeqCst), before + refused.len());
    assert_eq!(b_hits.load(Ordering::SeqCst), 2);
    assert_eq!(wire.connections_so_far().await, 0);

    // Redirects are capped.
    let e = g
        .send(OutboundRequest::get(format!("http://127.0.0.1:{a}/loop")))
        .await
        .unwrap_err();
    assert_eq!(e, OutboundError::TooManyRedirects(5));
}

/// The upstream router on 127.0.0.1 (its port) and a guard that lets it through.
async fn allowed_upstream() -> (u16, OutboundGuard) {
    let a = serve(
        "127.0.0.1",
        upstream_router(Upstream {
            hits: Arc::default(),
            targets: Arc::new(vec![]),
        }),
    )
    .await;
    let g = guard(&["127.0.0.1/32"], &[a], Arc::new(TableLookup::default()));
    (a, g)
}

#[tokio::test]
async fn response_size_and_time_are_capped() {
    let (a, g) = allowed_upstream().await;
    let with = |path: &str, limits: Limits| {
        let mut req = OutboundRequest::get(format!("http://127.0.0.1:{a}{path}"));
        req.limits = limits;
        g.send(req)
    };
    let small = Limits {
        max_response_bytes: 1024 * 1024,
        ..Limits::default()
    };
    assert_eq!(
        with("/big", small).await.unwrap_err(),
        OutboundError::TooLarge(1024 * 1024)
    );
    let roomy = Limits {
        max_response_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    };
    assert_eq!(
        with("/big", roomy).await.unwrap().body.len(),
        2 * 1024 * 1024
    );
    // No Content-Length and no end: the stream is abandoned at the cap, not buffered.
    assert_eq!(
        with("/endless", small).await.unwrap_err(),
        OutboundError::TooLarge(1024 * 1024)
    );
    // Time covers the whole exchange: no answer at all, and a body that stops mid-way.
    let quick = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    for path in ["/hang", "/slow-body"] {
        assert_eq!(
            with(path, quick).await.unwrap_err(),
            OutboundError::Timeout(Duration::from_millis(300)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_streamed_body_keeps_every_check_and_its_caps() {
    let (a, g) = allowed_upstream().await;
    let open = |path: &str, limits: Limits, within: Duration| {
        let mut req = OutboundRequest::get(format!("http://127.0.0.1:{a}{path}"));
        req.limits = limits;
        g.open(req, tokio::time::Instant::now() + within)
    };
    let long = Duration::from_secs(10);
    // The whole body, chunk by chunk, within the cap.
    let roomy = Limits {
        max_response_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    };
    let mut big = open("/big", roomy, long).await.unwrap();
    assert_eq!(big.status, http::StatusCode::OK);
    let mut read = 0;
    while let Some(chunk) = big.chunk().await.unwrap() {
        read += chunk.len();
    }
    assert_eq!(read, 2 * 1024 * 1024);
    // An announced body past the cap is refused with the head; an unannounced one at the cap.
    let small = Limits {
        max_response_bytes: 1024 * 1024,
        ..Limits::default()
    };
    assert_eq!(
        open("/big", small, long).await.unwrap_err(),
        OutboundError::TooLarge(1024 * 1024)
    );
    let mut endless = open("/endless", small, long).await.unwrap();
    let capped = loop {
        match endless.chunk().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(capped, Err(OutboundError::TooLarge(1024 * 1024)));
    // No head within the request timeout; or within the caller's deadline, if sooner.
    let quick = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    assert_eq!(
        open("/hang", quick, long).await.unwrap_err(),
        OutboundError::Timeout(Duration::from_millis(300))
    );
    let started = tokio::time::Instant::now();
    assert!(matches!(
        open("/hang", Limits::default(), Duration::from_millis(200)).await,
        Err(OutboundError::Timeout(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    // A head in time, then a body that stops: the caller's deadline ends it.
    let mut slow = open("/slow-body", quick, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(slow.chunk().await.unwrap().as_deref(), Some(&b"start"[..]));
    assert!(matches!(slow.chunk().await, Err(OutboundError::Timeout(_))));
}

#[tokio::test]
async fn a_streamed_fetch_is_refused_where_a_buffered_one_is() {
    let wire = Tripwire::bind("127.0.0.1").await;
    let g = guard(&[], &[wire.port()], TableLookup::new(HOSTILE_NAMES));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for (url, want) in [
        (
            format!("http://127.0.0.1:{}/", wire.port()),
            addr(AddressClass::Loopback),
        ),
        (
            format!("http://internal.example.com:{}/", wire.port()),
            addr(AddressClass::Loopback),
        ),
        (
            format!("http://localhost:{}/", wire.port()),
            Refusal::LocalName.into(),
        ),
        ("http://127.0.0.1:22/".to_owned(), Refusal::Port.into()),
    ] {
        let got = g.open(OutboundRequest::get(url.clone()), deadline).await;
        assert_eq!(got.unwrap_err(), want, "{url}");
    }
    assert_eq!(wire.connections_so_far().await, 0);
}
