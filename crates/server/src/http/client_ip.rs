//! RATE-2: who the client is. The socket peer, unless the peer is a trusted proxy
//! (`trusted_proxies`); then the one configured forwarding header (`proxy_header`:
//! `X-Forwarded-For` or `Forwarded`, never both) is read, all its lines joined in order, from
//! the right: each trusted proxy appended the address it saw, so the first address from the
//! right that is not a trusted proxy is the client. Anything left of it was written by the
//! client and is ignored — read as bytes, element by element from the right, so no byte or
//! quote the client wrote can hide what the proxies appended; a malformed value where the
//! answer would come from (a proxy's) means the peer.
//! The answer decides rate-limit buckets, brute-force keys and API-key IP allowlists, so a
//! header the client wrote can never change them.

use crate::config::ProxyHeader;
use crate::state::AppState;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client's address (RATE-2, [`resolve`]): the socket peer, or the forwarded
/// client when the peer is a trusted proxy.
pub fn of_request(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    Some(resolve(
        peer,
        &parts.headers,
        &state.trusted_proxies,
        state.proxy_header,
    ))
}

/// The client of a request that came from `peer` with `headers`.
#[must_use]
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], which: ProxyHeader) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let name = match which {
        ProxyHeader::XForwardedFor => header::HeaderName::from_static("x-forwarded-for"),
        ProxyHeader::Forwarded => header::FORWARDED,
    };
    // Bytes, not text: what the client wrote (left) may be anything, and must not stop the
    // proxies' own elements (right) from being read.
    let mut joined: Vec<u8> = Vec::new();
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(value.as_bytes());
    }
    let elements = match which {
        // X-Forwarded-For has no quoting: a `"` is just a bad element.
        ProxyHeader::XForwardedFor => joined.split(|b| *b == b',').collect(),
        ProxyHeader::Forwarded => split_from_the_right(&joined),
    };
    // The leftmost hop, for a chain of trusted proxies only (an internal client).
    let mut earliest = None;
    for element in elements.iter().rev() {
        let text = std::str::from_utf8(element).ok();
        let parsed = text.and_then(|element| match which {
            ProxyHeader::XForwardedFor => parse_node(element.trim()),
            ProxyHeader::Forwarded => forwarded_for(element),
        });
        let Some(ip) = parsed.map(|ip| ip.to_canonical()) else {
            return peer;
        };
        if !is_trusted(&ip) {
            return ip;
        }
        earliest = Some(ip);
    }
    earliest.unwrap_or(peer)
}

/// Splits a `Forwarded` value into its elements on commas outside double-quoted strings, the
/// quotes paired from the right: the proxies' elements are the rightmost, so a quote the client
/// left open (on the left) cannot swallow them.
fn split_from_the_right(value: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut end = value.len();
    for i in (0..value.len()).rev() {
        match value[i] {
            b'"' => {
                let backslashes = value[..i].iter().rev().take_while(|b| **b == b'\\').count();
                if backslashes % 2 == 0 {
                    quoted = !quoted;
                }
            }
            b',' if !quoted => {
                out.push(&value[i + 1..end]);
                end = i;
            }
            _ => {}
        }
    }
    out.push(&value[..end]);
    out.reverse();
    out
}

/// Splits on `sep` outside double-quoted strings (RFC 7239 values may be quoted).
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`,
/// `for="[2001:db8::1]:4711"`); `None` without one, or for `unknown`/obfuscated nodes.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_unquoted(element, ';') {
        let (key, value) = pair.trim().split_once('=')?;
        if key.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            found = Some(parse_node(value)?);
        }
    }
    found
}

/// An address with an optional port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok.then(|| host.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))?;
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PEER: &str = "10.0.0.1";

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/24".parse().unwrap(), "fd00::/64".parse().unwrap()]
    }

    fn client(which: ProxyHeader, name: &str, lines: &[&str]) -> String {
        client_from(PEER, which, name, lines)
    }

    fn client_from(peer: &str, which: ProxyHeader, name: &str, lines: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(line).unwrap(),
            );
        }
        resolve(peer.parse().unwrap(), &headers, &trusted(), which).to_string()
    }

    const XFF: ProxyHeader = ProxyHeader::XForwardedFor;
    const FWD: ProxyHeader = ProxyHeader::Forwarded;

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        for (name, value) in [
            ("x-forwarded-for", "192.0.2.9"),
            ("forwarded", "for=192.0.2.9"),
        ] {
            assert_eq!(
                client_from("203.0.113.5", XFF, name, &[value]),
                "203.0.113.5"
            );
            assert_eq!(
                client_from("203.0.113.5", FWD, name, &[value]),
                "203.0.113.5"
            );
        }
    }

    /// Each case: the header lines, and the client they name.
    fn cases(which: ProxyHeader, name: &str, cases: &[(&[&str], &str)]) {
        for (lines, expected) in cases {
            assert_eq!(client(which, name, lines), *expected, "{lines:?}");
        }
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right_skipping_trusted_proxies() {
        cases(
            XFF,
            "x-forwarded-for",
            &[
                (&["192.0.2.7"], "192.0.2.7"),
                // The client wrote the first entry; our proxy appended what it saw.
                (&["198.51.100.1, 192.0.2.7"], "192.0.2.7"),
                // A chain of our own proxies is skipped.
                (&["198.51.100.1, 192.0.2.7, 10.0.0.9"], "192.0.2.7"),
                // Every line counts, in order: a spoofed first line changes nothing.
                (&["198.51.100.1", "192.0.2.7"], "192.0.2.7"),
                (&["198.51.100.1, 192.0.2.7", "10.0.0.3"], "192.0.2.7"),
                // Ports and brackets are accepted; IPv4-mapped addresses are IPv4.
                (&["192.0.2.7:5555"], "192.0.2.7"),
                (&["[2001:db8::7]:443"], "2001:db8::7"),
                (&["::ffff:192.0.2.7"], "192.0.2.7"),
                // Only trusted hops: the earliest of them.
                (&["10.0.0.5, 10.0.0.6"], "10.0.0.5"),
                // No header: the peer.
                (&[], PEER),
            ],
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        assert_eq!(client(XFF, "forwarded", &["for=192.0.2.7"]), PEER);
        assert_eq!(client(FWD, "x-forwarded-for", &["192.0.2.7"]), PEER);
    }

    #[test]
    fn forwarded_is_read_from_the_right_skipping_trusted_proxies() {
        cases(
            FWD,
            "forwarded",
            &[
                (&["for=192.0.2.7;proto=https"], "192.0.2.7"),
                (
                    &["for=198.51.100.1, for=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1"],
                    "2001:db8:cafe::17",
                ),
                (&["for=198.51.100.1", "For=\"192.0.2.7:80\""], "192.0.2.7"),
                (
                    &["for=198.51.100.1, for=192.0.2.7, for=10.0.0.4"],
                    "192.0.2.7",
                ),
                // A quoted comma does not split an element.
                (&["for=192.0.2.7;host=\"a,b\""], "192.0.2.7"),
            ],
        );
    }

    #[test]
    fn malformed_values_fall_back_to_the_peer() {
        for line in [
            "garbage",
            "192.0.2.7, ",
            "",
            "192.0.2.300",
            "192.0.2.7:99999",
        ] {
            assert_eq!(client(XFF, "x-forwarded-for", &[line]), PEER, "{line:?}");
        }
        for line in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=192.0.2.7;for=192.0.2.8",
            "for=\"[2001:db8::1\"",
        ] {
            assert_eq!(client(FWD, "forwarded", &[line]), PEER, "{line:?}");
        }
        // Garbage the client wrote left of the real client is never reached.
        assert_eq!(
            client(XFF, "x-forwarded-for", &["garbage, 192.0.2.7"]),
            "192.0.2.7"
        );
    }

    /// The client's header, then what our proxy appended (on the same line or its own line).
    fn appended(which: ProxyHeader, name: &str, theirs: &[u8], ours: &str) -> Vec<String> {
        let header = header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        let mut same_line = theirs.to_vec();
        same_line.extend_from_slice(format!(", {ours}").as_bytes());
        let mut one = HeaderMap::new();
        one.append(&header, HeaderValue::from_bytes(&same_line).unwrap());
        let mut two = HeaderMap::new();
        two.append(&header, HeaderValue::from_bytes(theirs).unwrap());
        two.append(&header, HeaderValue::from_str(ours).unwrap());
        [one, two]
            .iter()
            .map(|h| resolve(PEER.parse().unwrap(), h, &trusted(), which).to_string())
            .collect()
    }

    /// RATE-2: nothing the client writes makes the proxy's own address the client — not a
    /// quote left open, not bytes that are no text.
    #[test]
    fn what_the_client_wrote_cannot_hide_what_the_proxy_appended() {
        for theirs in [&b"\""[..], b"\"192.0.2.1", b"\x80\xff", b"a\x80, \"b"] {
            assert_eq!(
                appended(XFF, "x-forwarded-for", theirs, "192.0.2.7"),
                ["192.0.2.7", "192.0.2.7"],
                "{theirs:?}"
            );
            assert_eq!(
                appended(FWD, "forwarded", theirs, "for=192.0.2.7"),
                ["192.0.2.7", "192.0.2.7"],
                "{theirs:?}"
            );
        }
        for theirs in [
            &b"for=\"junk"[..],
            b"for=\"[2001:db8::1]:1;x=\"\\\"",
            b"for=\xe9",
        ] {
            assert_eq!(
                appended(FWD, "forwarded", theirs, "for=\"[2001:db8::7]:443\""),
                ["2001:db8::7", "2001:db8::7"],
                "{theirs:?}"
            );
        }
    }

    #[test]
    fn ipv6_proxies_are_skipped_too() {
        assert_eq!(
            client_from("fd00::1", XFF, "x-forwarded-for", &["2001:db8::9, fd00::2"]),
            "2001:db8::9"
        );
    }
}
