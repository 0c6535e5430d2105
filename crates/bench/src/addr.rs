//! Where the bench connects: the server on a loopback address (nothing else), its gateway URL,
//! and the source addresses connections are spread over.

use crate::cli::Common;
use crate::sys;
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The gateway URL to use: the path from capabilities, on the host and port of `--url` (the
/// bench talks to nothing else), with `?v=1`.
pub fn gateway_url(base: &Url, advertised: &str) -> Result<Url, String> {
    let adv = Url::parse(advertised).map_err(|e| format!("gateway url {advertised:?}: {e}"))?;
    let mut u = base.clone();
    u.set_scheme(if base.scheme() == "https" {
        "wss"
    } else {
        "ws"
    })
    .map_err(|()| "cannot build the ws URL".to_owned())?;
    u.set_path(adv.path());
    u.set_query(Some("v=1"));
    u.set_fragment(None);
    if adv.host_str() != base.host_str()
        || adv.port_or_known_default() != base.port_or_known_default()
    {
        eprintln!(
            "note: capabilities advertise the gateway at {advertised}; using {u} (the bench only \
             talks to --url)"
        );
    }
    Ok(u)
}

pub async fn resolve_loopback(base: &Url) -> Result<SocketAddr, String> {
    let host = base.host_str().ok_or("--url has no host")?;
    let port = base.port_or_known_default().ok_or("--url has no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut loopback: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| a.ip().is_loopback())
        .collect();
    loopback.sort_by_key(|a| !a.is_ipv4());
    loopback.first().copied().ok_or_else(|| {
        format!(
            "{host} resolves to {addrs:?}: the bench only drives a server on this machine \
             (a loopback address such as 127.0.0.1)"
        )
    })
}

/// Source addresses for the connections, if they are spread (IPv4 loopback only).
pub fn source_addrs(common: &Common, n: usize, target: SocketAddr) -> Result<Vec<IpAddr>, String> {
    let range = sys::local_port_range();
    let ports = range.map(|(lo, hi)| hi - lo + 1);
    let needed = ports.map_or(1, |p| sys::source_addrs_needed(n, p));
    let k = common.source_addrs.unwrap_or(needed).max(1);
    if let (Some((lo, hi)), Some(p)) = (range, ports) {
        if needed > k {
            eprintln!(
                "warning: {n} connections to one server address need one ephemeral port each; \
                 the range {lo}-{hi} (/proc/sys/net/ipv4/ip_local_port_range) gives {p} per \
                 source address (minus ports still in TIME_WAIT). Expect AddrNotAvailable \
                 errors; use --source-addrs {needed} or widen the range (as root: sysctl \
                 net.ipv4.ip_local_port_range=\"1024 65535\")."
            );
        } else if k > 1 && common.source_addrs.is_none() {
            eprintln!(
                "note: {n} connections exceed 80% of the ephemeral port range {lo}-{hi}; \
                 spreading them over {k} source addresses 127.0.0.1..127.0.0.{k}"
            );
        }
    }
    if k == 1 {
        return Ok(Vec::new());
    }
    if !matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback()) {
        return Err("--source-addrs needs the server on an IPv4 loopback address".to_owned());
    }
    Ok((1..=k)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_url_keeps_the_given_host() {
        let base = Url::parse("http://127.0.0.1:18181").unwrap();
        let u = gateway_url(&base, "ws://127.0.0.1:18181/gateway").unwrap();
        assert_eq!(u.as_str(), "ws://127.0.0.1:18181/gateway?v=1");
        let u = gateway_url(&base, "wss://chat.example.com/gateway").unwrap();
        assert_eq!(u.as_str(), "ws://127.0.0.1:18181/gateway?v=1");
    }

    #[tokio::test]
    async fn refuses_non_loopback() {
        let base = Url::parse("http://192.0.2.1:80").unwrap();
        assert!(resolve_loopback(&base).await.is_err());
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(resolve_loopback(&base).await.unwrap().ip().is_loopback());
    }
}
