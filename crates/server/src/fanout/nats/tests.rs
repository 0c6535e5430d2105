//! NATS fan-out tests: URL credentials and signatures alone, and (with the NATS server on this
//! machine) two and three nodes sharing one stream.

use super::publish::wall_clock_ms;
use super::signing::{MSG_ID_HEADER, PUBLISHED_HEADER, SIGNATURE_HEADER};
use super::stream::subject_name;
use super::url::parse_url;
use super::*;
use async_nats::jetstream;
use conclave_core::UserId;
use secrecy::SecretBox;
use std::time::Instant;

const NATS_URL: &str = "nats://127.0.0.1:4222";

/// The key every node of a test cluster shares.
fn test_key() -> EventKey {
    EventKey::new(SecretBox::new(Box::new([42; 32])))
}

fn random_cluster() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// The first node of a new cluster (and the cluster's name), or says why not: under `CI=true`
/// an unreachable NATS fails the test.
async fn connect_or_skip(window: Duration) -> Option<(String, NatsFanOut)> {
    let cluster = random_cluster();
    match NatsFanOut::connect(NATS_URL, &cluster, window, test_key()).await {
        Ok(f) => Some((cluster, f)),
        Err(e) => {
            if crate::config::under_ci() {
                panic!("NATS with JetStream is required under CI=true: {e}");
            }
            eprintln!("SKIPPED nats fanout: {e}");
            None
        }
    }
}

/// [`connect_or_skip`], with the node's stream of events taken.
async fn listening_or_skip(
    window: Duration,
) -> Option<(String, NatsFanOut, mpsc::UnboundedReceiver<Delivered>)> {
    let (cluster, node) = connect_or_skip(window).await?;
    let rx = node.take_stream().expect("stream");
    Some((cluster, node, rx))
}

/// Another node of `cluster`, once a first one has connected (so NATS is there).
async fn node(cluster: &str, window: Duration) -> NatsFanOut {
    NatsFanOut::connect(NATS_URL, cluster, window, test_key())
        .await
        .expect("another node")
}

/// What `f` replays of (after, upto]; the range must still be retained.
async fn replayed(f: &NatsFanOut, after: u64, upto: u64) -> Vec<Delivered> {
    f.replay(after, upto)
        .await
        .unwrap()
        .expect("a retained range")
}

/// Publishes a real event "real" for `user` from `f` and asserts it is the next `rx` gets
/// (`why`: nothing else came first); answers it.
async fn the_real_one_follows(
    f: &NatsFanOut,
    rx: &mut mpsc::UnboundedReceiver<Delivered>,
    user: UserId,
    why: &str,
) -> Delivered {
    f.publish(&Event::user("MESSAGE_CREATE", user, "real"));
    f.flush().await;
    let d = next(rx).await;
    assert_eq!(
        serde_json::from_str::<String>(d.event.d.get()).unwrap(),
        "real",
        "{why}"
    );
    d
}

/// Reading the stream back from `after` up to `last` on `f` gives `last` alone.
async fn replays_only(f: &NatsFanOut, after: u64, last: &Delivered) {
    let again = replayed(f, after, last.position).await;
    assert_eq!(
        again.iter().map(|d| d.position).collect::<Vec<_>>(),
        vec![last.position]
    );
}

/// Publishes an `X` event from `f` per number in `numbers`; the positions they arrive at.
async fn publish_numbered(
    f: &NatsFanOut,
    rx: &mut mpsc::UnboundedReceiver<Delivered>,
    numbers: std::ops::Range<i64>,
) -> Vec<u64> {
    for i in numbers.clone() {
        f.publish(&Event::user("X", UserId::new(), i));
    }
    f.flush().await;
    let mut positions = Vec::new();
    for _ in numbers {
        positions.push(next(rx).await.position);
    }
    positions
}

async fn delete_stream(f: &NatsFanOut) {
    let _ = f.shared.js.delete_stream(f.stream_name()).await;
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivered>) -> Delivered {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
}

fn number(d: &Delivered) -> i64 {
    serde_json::from_str(d.event.d.get()).expect("a number")
}

#[test]
fn signatures_cover_the_message_id_the_publish_time_and_the_payload() {
    let key = test_key();
    let payload = br#"{"t":"X"}"#;
    let good = key.headers("n-1", 1_000, payload);
    assert_eq!(key.verify(Some(&good), payload), Some(1_000));
    assert_eq!(
        key.verify(Some(&good), br#"{"t":"Y"}"#),
        None,
        "another payload"
    );
    assert_eq!(key.verify(None, payload), None, "no headers");
    let mut unsigned = good.clone();
    unsigned.insert(SIGNATURE_HEADER, "");
    assert_eq!(key.verify(Some(&unsigned), payload), None, "unsigned");
    let mut moved = good.clone();
    moved.insert(MSG_ID_HEADER, "n-2");
    assert_eq!(
        key.verify(Some(&moved), payload),
        None,
        "a copy under a fresh id"
    );
    let mut later = good.clone();
    later.insert(PUBLISHED_HEADER, "2000");
    assert_eq!(
        key.verify(Some(&later), payload),
        None,
        "a copy with a later time"
    );
    let mut timeless = async_nats::HeaderMap::new();
    for name in [MSG_ID_HEADER, SIGNATURE_HEADER] {
        if let Some(v) = good.get(name) {
            timeless.insert(name, v.as_str());
        }
    }
    assert_eq!(
        key.verify(Some(&timeless), payload),
        None,
        "no publish time"
    );
    let other = EventKey::new(SecretBox::new(Box::new([7; 32])));
    let foreign = other.headers("n-1", 1_000, payload);
    assert_eq!(
        key.verify(Some(&foreign), payload),
        None,
        "another cluster's key"
    );
    let mut garbage = good.clone();
    garbage.insert(SIGNATURE_HEADER, "v2=not base64!");
    assert_eq!(key.verify(Some(&garbage), payload), None);
    let mut twice = good.clone();
    twice.append(
        SIGNATURE_HEADER,
        key.headers("n-1", 1_000, payload)
            .get(SIGNATURE_HEADER)
            .unwrap()
            .as_str(),
    );
    assert_eq!(
        key.verify(Some(&twice), payload),
        None,
        "one signature only"
    );
    assert!(format!("{key:?}").contains("redacted"));
}

#[test]
fn credentials_come_from_the_url() {
    let auth = |url: &str| parse_url(url).map(|(_, a)| a);
    assert_eq!(auth("nats://127.0.0.1:4222"), Ok(NatsAuth::None));
    assert_eq!(
        auth("nats://s3cret@nats.internal"),
        Ok(NatsAuth::Token("s3cret".into()))
    );
    assert_eq!(
        auth("nats://conclave:p%40ss%3Aword@nats.internal:4222"),
        Ok(NatsAuth::UserPassword(
            "conclave".into(),
            "p@ss:word".into()
        ))
    );
    let seed = format!("SU{}", "A".repeat(56));
    assert_eq!(
        auth(&format!("nats://{seed}@nats.internal")),
        Ok(NatsAuth::NKey(seed.clone()))
    );
    assert_eq!(
        auth("nats://u:p@a:4222, nats://b:4222"),
        Ok(NatsAuth::UserPassword("u".into(), "p".into()))
    );
    assert!(auth("nats://u:p@a:4222,nats://v:q@b:4222").is_err());
    assert!(auth("nats://:p@a").is_err(), "a password without a user");
    assert!(auth("http://a").is_err());
    assert!(auth("").is_err());
    // The addresses handed to the client carry no credentials (they could be logged).
    for url in ["nats://conclave:s3cret@a:4222,nats://b", "nats://s3cret@a"] {
        let (servers, _) = parse_url(url).unwrap();
        for s in servers {
            assert!(!s.as_url_str().contains("s3cret"), "{}", s.as_url_str());
        }
    }
    assert_eq!(url_has_credentials("nats://t@a"), Ok(true));
    assert_eq!(url_has_credentials("nats://a"), Ok(false));
}

/// A stand-in NATS server that answers INFO and reports the CONNECT line it is sent.
async fn connect_line(url_of: impl FnOnce(u16) -> String) -> serde_json::Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        write
            .write_all(b"INFO {\"server_id\":\"fake\",\"version\":\"2.10.0\",\"proto\":1,\"max_payload\":1048576,\"auth_required\":true,\"headers\":true}\r\n")
            .await
            .unwrap();
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await.unwrap();
        let _ = write.write_all(b"-ERR 'Authorization Violation'\r\n").await;
        line
    });
    let url = url_of(port);
    let connecting = tokio::spawn(async move {
        let _ = NatsFanOut::connect(&url, "fake", Duration::from_secs(60), test_key()).await;
    });
    let line = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the client connects")
        .unwrap();
    connecting.abort();
    let json = line
        .strip_prefix("CONNECT ")
        .unwrap_or_else(|| panic!("a CONNECT line: {line}"));
    serde_json::from_str(json.trim()).expect("CONNECT carries JSON")
}

#[tokio::test]
async fn url_credentials_are_sent_to_nats() {
    let c = connect_line(|port| format!("nats://conclave:p%40ss@127.0.0.1:{port}")).await;
    assert_eq!(
        (c["user"].as_str(), c["pass"].as_str()),
        (Some("conclave"), Some("p@ss"))
    );
    let c = connect_line(|port| format!("nats://t0ken@127.0.0.1:{port}")).await;
    assert_eq!(c["auth_token"], "t0ken");
    assert!(c["user"].is_null());
    let c = connect_line(|port| format!("nats://127.0.0.1:{port}")).await;
    assert!(c["auth_token"].is_null() && c["user"].is_null() && c["pass"].is_null());
}

#[test]
fn names_are_sanitized() {
    assert_eq!(stream_name("conclave"), "CONCLAVE_EVENTS");
    assert_eq!(stream_name("eu.west 1/x"), "EU_WEST_1_X_EVENTS");
    assert_eq!(subject_name("eu.west*1"), "eu_west_1.events");
    assert_eq!(subject_name("prod-1"), "prod-1.events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_one_node_reach_another_in_order() {
    let Some((cluster, a)) = connect_or_skip(Duration::from_secs(60)).await else {
        return;
    };
    let b = node(&cluster, Duration::from_secs(60)).await;
    assert!(a.ready().await && b.ready().await);
    assert_eq!(a.epoch(), b.epoch(), "one stream, one epoch");
    assert!(a.epoch().starts_with(&format!("nats:{}:", a.stream_name())));
    let mut rx_a = a.take_stream().expect("stream");
    let mut rx_b = b.take_stream().expect("stream");
    assert!(b.take_stream().is_none());

    let user = UserId::new();
    let mut event = Event::user("MESSAGE_CREATE", user, 0);
    event = event.with_control(Control::RevokeUser { user, except: None });
    a.publish(&event);
    for i in 1..50 {
        a.publish(&Event::user("MESSAGE_CREATE", user, i));
    }
    a.flush().await;

    let mut seen_b = Vec::new();
    for want in 0..50 {
        let d = next(&mut rx_b).await;
        assert_eq!(number(&d), want, "in publish order");
        if let Some(prev) = seen_b.last().map(|p: &Delivered| p.position) {
            assert!(d.position > prev, "positions strictly increase");
        }
        seen_b.push(d);
    }
    // The wire format round-trips the whole event.
    let first = &seen_b[0].event;
    assert_eq!(first.t, "MESSAGE_CREATE");
    assert_eq!(first.audience, Audience::User(user));
    assert_eq!(first.control, event.control);
    // The publishing node sees the same positions.
    for d in &seen_b {
        let mine = next(&mut rx_a).await;
        assert_eq!(mine.position, d.position);
        assert_eq!(number(&mine), number(d));
    }

    // Both nodes publish: each node's events keep their order, and both see one order.
    for i in 100..120 {
        a.publish(&Event::user("A", user, i));
        b.publish(&Event::user("B", user, i));
    }
    tokio::join!(a.flush(), b.flush());
    let mut from_a = Vec::new();
    let mut from_b = Vec::new();
    for _ in 0..40 {
        let (x, y) = (next(&mut rx_a).await, next(&mut rx_b).await);
        assert_eq!((x.position, &x.event.t), (y.position, &y.event.t));
        if x.event.t == "A" {
            from_a.push(number(&x));
        } else {
            from_b.push(number(&x));
        }
    }
    assert_eq!(from_a, (100..120).collect::<Vec<_>>());
    assert_eq!(from_b, (100..120).collect::<Vec<_>>());

    // Replay returns exactly (after, upto], from either node.
    let p = |i: usize| seen_b[i].position;
    let got = replayed(&b, p(9), p(19)).await;
    assert_eq!(
        got.iter().map(|d| d.position).collect::<Vec<_>>(),
        seen_b[10..20]
            .iter()
            .map(|d| d.position)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        got.iter().map(number).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    let all = replayed(&a, p(0) - 1, p(49)).await;
    assert_eq!(all.len(), 50);
    assert_eq!(replayed(&a, p(5), p(5)).await.len(), 0);
    // Beyond the end: what exists.
    let last = replayed(&a, p(49), p(49) + 40 + 1000).await;
    assert_eq!(last.len(), 40);

    // A node that started later has none of it in memory: it reads the stream back.
    let c = node(&cluster, Duration::from_secs(60)).await;
    assert_eq!(c.epoch(), a.epoch());
    let from_stream = replayed(&c, p(9), p(19)).await;
    assert_eq!(
        from_stream
            .iter()
            .map(|d| (d.position, number(d), d.event.t.clone()))
            .collect::<Vec<_>>(),
        got.iter()
            .map(|d| (d.position, number(d), d.event.t.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(replayed(&c, p(0) - 1, p(49)).await.len(), 50);
    assert_eq!(replayed(&c, p(49), p(49) + 40).await.len(), 40);

    delete_stream(&a).await;
}

/// SCALE-2: whatever reaches the subject without this cluster's signature is dropped, live
/// and on replay, and the node's own signed events still flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_forged_events_are_dropped() {
    let Some((cluster, a, mut rx)) = listening_or_skip(Duration::from_secs(60)).await else {
        return;
    };
    let user = UserId::new();
    let forged = serde_json::to_vec(&Event::user("MESSAGE_CREATE", user, "forged")).unwrap();
    let js = jetstream::new(async_nats::connect(NATS_URL).await.expect("a NATS client"));
    let subject = subject_name(&cluster);
    let publish = |headers: async_nats::HeaderMap| {
        let js = js.clone();
        let subject = subject.clone();
        let payload = Bytes::from(forged.clone());
        async move {
            js.publish_with_headers(subject, headers, payload)
                .await
                .expect("publish")
                .await
                .expect("stored in the stream")
        }
    };
    let first = publish(async_nats::HeaderMap::new()).await.sequence;
    let other = EventKey::new(SecretBox::new(Box::new([7; 32])));
    publish(other.headers("forger-1", wall_clock_ms(), &forged)).await;
    let mut garbled = async_nats::HeaderMap::new();
    garbled.insert(MSG_ID_HEADER, "forger-2");
    garbled.insert(SIGNATURE_HEADER, "v1=AAAA");
    publish(garbled).await;
    let d = the_real_one_follows(&a, &mut rx, user, "the forged events never reach the hub").await;
    assert_eq!(d.position, first + 3, "after the three forged ones");
    // A node reading the stream back (RESUME on a node that started later) drops them too.
    let b = node(&cluster, Duration::from_secs(60)).await;
    replays_only(&b, first - 1, &d).await;
    delete_stream(&a).await;
}

/// A node's signed message captured off the subject and published again once JetStream's
/// duplicate window has passed (so JetStream stores it as new) reaches no hub, live or on
/// replay: it was stored long after its signed publish time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_event_published_again_after_the_window_is_dropped() {
    let Some((cluster, a, mut rx)) = listening_or_skip(Duration::from_secs(2)).await else {
        return;
    };
    let user = UserId::new();
    a.publish(&Event::user("MESSAGE_CREATE", user, "original"));
    a.flush().await;
    let original = next(&mut rx).await;
    let js = jetstream::new(async_nats::connect(NATS_URL).await.expect("a NATS client"));
    let subject = subject_name(&cluster);
    let stream = js.get_stream(a.stream_name()).await.expect("the stream");
    let captured = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .expect("the original in the stream");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    js.publish_with_headers(subject, captured.headers, captured.payload)
        .await
        .expect("publish")
        .await
        .expect("stored again: the duplicate window has passed");
    let d = the_real_one_follows(&a, &mut rx, user, "the copy never reaches the hub").await;
    assert_eq!(d.position, original.position + 2, "after the copy");
    replays_only(&a, original.position, &d).await;
    delete_stream(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aged_out_ranges_cannot_be_replayed() {
    let Some((_, a, mut rx)) = listening_or_skip(Duration::from_secs(1)).await else {
        return;
    };
    let positions = publish_numbered(&a, &mut rx, 0..3).await;
    assert_eq!(replayed(&a, positions[0] - 1, positions[2]).await.len(), 3);
    // Wait (polling) until the stream has aged them out. A replay racing the expiry (the
    // events go between the look at the stream and the read) times out: poll again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if matches!(a.replay(positions[0] - 1, positions[2]).await, Ok(None)) {
            break;
        }
        assert!(Instant::now() < deadline, "events never aged out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What is still retained can be replayed.
    a.publish(&Event::user("X", UserId::new(), 3));
    a.flush().await;
    let newest = next(&mut rx).await;
    let got = replayed(&a, positions[2], newest.position).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].position, newest.position);
    delete_stream(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_window_updates_the_stream() {
    let Some((cluster, a)) = connect_or_skip(Duration::from_secs(60)).await else {
        return;
    };
    let b = node(&cluster, Duration::from_secs(90)).await;
    let info = b
        .shared
        .js
        .get_stream(b.stream_name())
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.max_age, Duration::from_secs(90));
    assert_eq!(info.config.subjects, vec![subject_name(&cluster)]);
    // Updating is not replacing: the epoch stays.
    assert_eq!(a.epoch(), b.epoch());
    delete_stream(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_stream_is_a_new_epoch_and_positions_keep_increasing() {
    let Some((_, a, mut rx)) = listening_or_skip(Duration::from_secs(60)).await else {
        return;
    };
    let last = publish_numbered(&a, &mut rx, 0..3).await[2];
    let before = a.epoch();
    a.shared
        .js
        .delete_stream(a.stream_name())
        .await
        .expect("delete");
    // The stream task notices within its watch interval and recreates the stream.
    let deadline = Instant::now() + WATCH_INTERVAL * 3;
    while a.epoch() == before {
        assert!(Instant::now() < deadline, "the replacement was not noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.publish(&Event::user("X", UserId::new(), 3));
    a.flush().await;
    let d = next(&mut rx).await;
    assert_eq!(number(&d), 3);
    assert!(
        d.position > last,
        "positions continue: {} after {last}",
        d.position
    );
    // Positions from before the replacement cannot be replayed; later ones can.
    assert!(a.replay(last - 1, d.position).await.unwrap().is_none());
    assert_eq!(replayed(&a, last, d.position).await.len(), 1);
    delete_stream(&a).await;
}
