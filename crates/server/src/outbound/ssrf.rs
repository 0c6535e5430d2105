//! The SSRF guard (HOOK-3): the one HTTP client every server-side fetch goes through.
//!
//! A URL passes when it is `http`/`https` without credentials or a fragment, on an allowed port
//! (80, 443 and the configured extras), and its host is neither a `localhost` name nor an
//! address in a special range (`address::classify`) outside the configured allowlist. The `url`
//! crate parses hosts the WHATWG way, so decimal, octal, hex and short IPv4 spellings
//! (`2852039166`, `0251.0376.0251.0376`, `0xa9fea9fe`, `169.254.43518`) arrive here already
//! normalised to the address they mean.
//!
//! A host name is resolved once, by the client's own resolver: every address must pass, and the
//! connection goes to exactly those addresses, so no second lookup can rebind the name. Every
//! redirect hop is checked again and their number is capped; no system proxy is used; the whole
//! exchange has a deadline and the body is read in chunks and abandoned past its size cap.
//!
//! [`OutboundGuard::open`] is the same exchange for a body read as it arrives (a model's
//! streamed answer, AGENT-3): the same checks up to the response head, which must come within
//! the request's timeout; then [`StreamingResponse::chunk`] hands the body over chunk by chunk
//! within a total byte cap and the caller's overall deadline.

use super::address::{self, AddressClass};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::{Host, Url};

/// Why the guard refused a URL. The message names the rule, never the resolved address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error("URLs may not carry credentials")]
    Credentials,
    #[error("URLs may not carry a fragment")]
    Fragment,
    #[error("this port is not allowed for outbound requests")]
    Port,
    #[error("localhost names are not allowed")]
    LocalName,
    #[error("the host is a {} address, which outbound requests may not reach", .0.name())]
    Address(AddressClass),
}

/// Everything an outbound fetch can fail with. `BadUrl` and `Refused` are the caller's URL
/// (a later 422 `url_not_allowed`); the rest happen on the way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("not a valid URL: {0}")]
    BadUrl(&'static str),
    #[error("{0}")]
    Refused(Refusal),
    #[error("the host name does not resolve")]
    Unresolvable,
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request failed: {0}")]
    Transport(&'static str),
}

impl OutboundError {
    /// True when the URL itself is not acceptable (as opposed to the target misbehaving).
    #[must_use]
    pub fn is_url_not_allowed(&self) -> bool {
        matches!(self, Self::BadUrl(_) | Self::Refused(_))
    }
}

impl From<Refusal> for OutboundError {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

/// URLs longer than this are refused before parsing.
const MAX_URL_LEN: usize = 2048;

/// What the guard lets through; built once from the configuration (`RuntimeConfig::outbound`).
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// Ranges let through although special (`webhook_allow_cidrs`): tests, private deployments.
    pub allow_cidrs: Vec<IpNet>,
    /// Ports besides 80 and 443 (`webhook_allow_ports`).
    pub extra_ports: Vec<u16>,
    /// Redirect hops followed before giving up.
    pub max_redirects: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_cidrs: vec![],
            extra_ports: vec![],
            max_redirects: 5,
        }
    }
}

impl OutboundPolicy {
    /// The default policy, also letting through `allow_cidrs` and the ports `extra_ports`.
    #[must_use]
    pub fn allowing(allow_cidrs: Vec<IpNet>, extra_ports: Vec<u16>) -> Self {
        Self {
            allow_cidrs,
            extra_ports,
            ..Self::default()
        }
    }

    /// Refuses `ip` unless it is public unicast or inside the allowlist.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = address::canonical(ip);
        match address::classify(ip) {
            None => Ok(()),
            Some(class)
                if class.allowlistable() && self.allow_cidrs.iter().any(|n| n.contains(&ip)) =>
            {
                Ok(())
            }
            Some(class) => Err(Refusal::Address(class)),
        }
    }

    fn port_allowed(&self, port: u16) -> bool {
        port == 80 || port == 443 || self.extra_ports.contains(&port)
    }

    /// The checks that need no lookup. A redirect hop may carry a fragment (it is never sent).
    fn check_static(&self, url: &Url, hop: Hop) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        if hop == Hop::First && url.fragment().is_some() {
            return Err(Refusal::Fragment);
        }
        if !url
            .port_or_known_default()
            .is_some_and(|p| self.port_allowed(p))
        {
            return Err(Refusal::Port);
        }
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(name)) if is_local_name(name) => Err(Refusal::LocalName),
            Some(Host::Domain(_)) => Ok(()),
            None => Err(Refusal::Scheme),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hop {
    First,
    Redirect,
}

/// `localhost` and `*.localhost` (RFC 6761), with or without the root dot.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Parses `raw` and applies the checks that need no lookup.
fn parse(raw: &str, policy: &OutboundPolicy) -> Result<Url, OutboundError> {
    if raw.len() > MAX_URL_LEN {
        return Err(OutboundError::BadUrl("longer than 2048 characters"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(OutboundError::BadUrl(
            "contains whitespace or control characters",
        ));
    }
    let url = Url::parse(raw).map_err(|_| OutboundError::BadUrl("cannot be parsed"))?;
    policy.check_static(&url, Hop::First)?;
    Ok(url)
}

/// Turns a host name into addresses. The system resolver in production; tests inject their own.
#[async_trait::async_trait]
pub trait Lookup: Send + Sync + 'static {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
pub struct SystemLookup;

#[async_trait::async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

struct Inner {
    policy: OutboundPolicy,
    lookup: Arc<dyn Lookup>,
}

impl Inner {
    /// One lookup; every address must pass, and the caller connects to exactly these.
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, OutboundError> {
        if is_local_name(host) {
            return Err(Refusal::LocalName.into());
        }
        let ips = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self
                .lookup
                .lookup(host)
                .await
                .map_err(|_| OutboundError::Unresolvable)?,
        };
        if ips.is_empty() {
            return Err(OutboundError::Unresolvable);
        }
        ips.into_iter()
            .map(|ip| {
                self.policy.check_ip(ip)?;
                Ok(address::canonical(ip))
            })
            .collect()
    }
}

/// The client's resolver: `Inner::resolve`, so a connection only ever goes to checked addresses.
struct GuardedResolver(Arc<Inner>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let inner = self.0.clone();
        Box::pin(async move {
            let ips = inner.resolve(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Per-request caps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole exchange — lookup, connect, every redirect, the full body — ends by then.
    pub timeout: Duration,
    /// Bodies past this many bytes are abandoned.
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
        }
    }
}

/// One outbound request.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub limits: Limits,
}

impl OutboundRequest {
    #[must_use]
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            limits: Limits::default(),
        }
    }

    #[must_use]
    pub fn post(url: impl Into<String>, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            method: Method::POST,
            headers,
            body,
            ..Self::get(url)
        }
    }
}

/// A complete response, body within its cap.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Where the last redirect led.
    pub final_url: Url,
}

/// The guarded client. Cheap to clone; build one at start and share it.
#[derive(Clone)]
pub struct OutboundGuard {
    inner: Arc<Inner>,
    client: reqwest::Client,
}

impl std::fmt::Debug for OutboundGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundGuard")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl OutboundGuard {
    /// A guard resolving through the operating system.
    pub fn new(policy: OutboundPolicy) -> Result<Self, OutboundError> {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// A guard resolving through `lookup` (tests pass a fixed table).
    pub fn with_lookup(
        policy: OutboundPolicy,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Self, OutboundError> {
        let inner = Arc::new(Inner { policy, lookup });
        let hops = inner.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            let max = hops.policy.max_redirects;
            if attempt.previous().len() > max {
                return attempt.error(OutboundError::TooManyRedirects(max));
            }
            match hops.policy.check_static(attempt.url(), Hop::Redirect) {
                Ok(()) => attempt.follow(),
                Err(r) => attempt.error(OutboundError::Refused(r)),
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(inner.clone())))
            .redirect(redirect)
            .referer(false)
            .user_agent(concat!("Conclave/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| OutboundError::Transport("the HTTP client cannot start"))?;
        Ok(Self { inner, client })
    }

    #[must_use]
    pub fn policy(&self) -> &OutboundPolicy {
        &self.inner.policy
    }

    /// Checks `raw` as a fetch would, lookup included, without sending anything (for refusing a
    /// URL when it is configured; every fetch checks again).
    pub async fn check(&self, raw: &str) -> Result<Url, OutboundError> {
        let url = parse(raw, &self.inner.policy)?;
        if let Some(Host::Domain(name)) = url.host() {
            self.inner.resolve(name).await?;
        }
        Ok(url)
    }

    /// Sends `req` through every check; `Ok` for any status the target answers with.
    pub async fn send(&self, req: OutboundRequest) -> Result<Fetched, OutboundError> {
        let url = parse(&req.url, &self.inner.policy)?;
        let limits = req.limits;
        tokio::time::timeout(limits.timeout, self.exchange(url, req))
            .await
            .map_err(|_| OutboundError::Timeout(limits.timeout))?
    }

    /// Sends `req` through every check and answers once the response head has come (within
    /// `req.limits.timeout`, and before `deadline`); the body is then read with
    /// [`StreamingResponse::chunk`], at most `req.limits.max_response_bytes` of it in all, and
    /// none of it after `deadline`. `Ok` for any status the target answers with.
    pub async fn open(
        &self,
        req: OutboundRequest,
        deadline: tokio::time::Instant,
    ) -> Result<StreamingResponse, OutboundError> {
        let started = tokio::time::Instant::now();
        let url = parse(&req.url, &self.inner.policy)?;
        let limits = req.limits;
        let head_by = deadline.min(started + limits.timeout);
        let response = tokio::time::timeout_at(head_by, self.head(url, req))
            .await
            .map_err(|_| OutboundError::Timeout(head_by - started))??;
        Ok(StreamingResponse {
            status: response.status(),
            headers: response.headers().clone(),
            final_url: response.url().clone(),
            response,
            read: 0,
            cap: limits.max_response_bytes,
            deadline,
            allowed: deadline.saturating_duration_since(started),
        })
    }

    /// The request sent and its response head, refused at once when it announces a body past
    /// the cap.
    async fn head(
        &self,
        url: Url,
        req: OutboundRequest,
    ) -> Result<reqwest::Response, OutboundError> {
        let cap = req.limits.max_response_bytes;
        let response = self
            .client
            .request(req.method, url)
            .headers(req.headers)
            .body(req.body)
            .send()
            .await
            .map_err(classify_error)?;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(OutboundError::TooLarge(cap));
        }
        Ok(response)
    }

    async fn exchange(&self, url: Url, req: OutboundRequest) -> Result<Fetched, OutboundError> {
        let cap = req.limits.max_response_bytes;
        let mut response = self.head(url, req).await?;
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(classify_error)? {
            if body.len() + chunk.len() > cap {
                return Err(OutboundError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status: response.status(),
            headers: response.headers().clone(),
            final_url: response.url().clone(),
            body: body.freeze(),
        })
    }
}

/// A response whose body is read as it arrives ([`OutboundGuard::open`]).
pub struct StreamingResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Where the last redirect led.
    pub final_url: Url,
    response: reqwest::Response,
    /// Bytes of the body handed over so far.
    read: usize,
    cap: usize,
    deadline: tokio::time::Instant,
    /// The time the caller allowed for the whole exchange (named in a `Timeout`).
    allowed: Duration,
}

impl std::fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl StreamingResponse {
    /// The next piece of the body (`None` at its end): `TooLarge` once the body passes the
    /// cap, `Timeout` once the deadline has passed.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, OutboundError> {
        let next = tokio::time::timeout_at(self.deadline, self.response.chunk())
            .await
            .map_err(|_| OutboundError::Timeout(self.allowed))?
            .map_err(classify_error)?;
        if let Some(chunk) = &next {
            self.read += chunk.len();
            if self.read > self.cap {
                return Err(OutboundError::TooLarge(self.cap));
            }
        }
        Ok(next)
    }
}

/// Finds the guard's own error inside reqwest's (the resolver and the redirect policy raise
/// it), else names the kind of failure without reqwest's text, which carries the URL.
fn classify_error(e: reqwest::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(ours) = err.downcast_ref::<OutboundError>() {
            return ours.clone();
        }
        source = err.source();
    }
    OutboundError::Transport(if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "bad redirect"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "bad response"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> Result<Url, OutboundError> {
        parse(raw, &OutboundPolicy::default())
    }

    #[test]
    fn every_spelling_of_the_metadata_address_is_normalised_then_refused() {
        let link_local = Err(OutboundError::Refused(Refusal::Address(
            AddressClass::LinkLocal,
        )));
        for raw in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0251.0376.0251.0376/",
            "http://0xa9fea9fe/",
            "http://0xA9.0xFE.0xA9.0xFE/",
            "http://169.254.43518/",
            "http://169.16689662/",
            "http://0251.254.169.254/",
            "http://169.254.169.254./",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b::169.254.169.254]/",
        ] {
            assert_eq!(refused(raw), link_local, "{raw}");
        }
        assert_eq!(
            refused("http://[2002:a9fe:a9fe::]/"),
            Err(Refusal::Address(AddressClass::Transition).into())
        );
    }

    #[test]
    fn url_rules_come_before_any_lookup() {
        let cases: &[(&str, OutboundError)] = &[
            ("ftp://example.com/", Refusal::Scheme.into()),
            ("file:///etc/passwd", Refusal::Scheme.into()),
            ("gopher://example.com:70/", Refusal::Scheme.into()),
            ("javascript:alert(1)", Refusal::Scheme.into()),
            ("data:text/plain,hi", Refusal::Scheme.into()),
            ("http://user:pw@example.com/", Refusal::Credentials.into()),
            ("http://user@example.com/", Refusal::Credentials.into()),
            ("https://example.com/#frag", Refusal::Fragment.into()),
            ("https://example.com/#", Refusal::Fragment.into()),
            ("http://example.com:22/", Refusal::Port.into()),
            ("https://example.com:8443/", Refusal::Port.into()),
            ("http://localhost/", Refusal::LocalName.into()),
            ("http://LocalHost./", Refusal::LocalName.into()),
            ("http://api.localhost/", Refusal::LocalName.into()),
            (
                "not a url",
                OutboundError::BadUrl("contains whitespace or control characters"),
            ),
            (
                "http://exa\tmple.com/",
                OutboundError::BadUrl("contains whitespace or control characters"),
            ),
            ("//example.com/", OutboundError::BadUrl("cannot be parsed")),
            (
                "http://[fe80::1%25eth0]/",
                OutboundError::BadUrl("cannot be parsed"),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(refused(raw).as_ref(), Err(want), "{raw}");
            assert!(want.is_url_not_allowed());
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(refused(&long), Err(OutboundError::BadUrl(_))));
        assert!(refused("https://example.com/hook?x=1").is_ok());
        assert!(refused("http://93.184.215.14/").is_ok());
    }

    #[test]
    fn ports_and_the_allowlist_are_configurable() {
        let policy = OutboundPolicy {
            allow_cidrs: vec!["10.1.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
            extra_ports: vec![8443],
            ..OutboundPolicy::default()
        };
        assert!(parse("https://example.com:8443/", &policy).is_ok());
        assert!(parse("http://10.1.2.3/", &policy).is_ok());
        assert!(parse("http://[::ffff:10.1.2.3]/", &policy).is_ok());
        assert!(parse("http://[fd00::1]/", &policy).is_ok());
        assert_eq!(
            parse("http://10.2.0.1/", &policy).unwrap_err(),
            Refusal::Address(AddressClass::Private).into()
        );
        // The allowlist never turns a group address into a target.
        let everything = OutboundPolicy {
            allow_cidrs: vec!["0.0.0.0/0".parse().unwrap()],
            ..OutboundPolicy::default()
        };
        assert!(parse("http://127.0.0.1/", &everything).is_ok());
        for raw in [
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(parse(raw, &everything).is_err(), "{raw}");
        }
    }

    #[test]
    fn the_policy_comes_from_the_configuration() {
        let config = crate::config::Config::load(
            None,
            [
                ("CONCLAVE_WEBHOOK_ALLOW_CIDRS", "10.9.0.0/16"),
                ("CONCLAVE_WEBHOOK_ALLOW_PORTS", "8080"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .unwrap();
        let policy = crate::config::RuntimeConfig::try_from(config)
            .unwrap()
            .outbound;
        assert!(parse("http://10.9.1.1:8080/", &policy).is_ok());
        assert_eq!(
            parse("http://10.8.1.1:8080/", &policy).unwrap_err(),
            Refusal::Address(AddressClass::Private).into()
        );
        assert_eq!(
            parse("http://example.com:8081/", &policy).unwrap_err(),
            Refusal::Port.into()
        );
        let default = crate::config::RuntimeConfig::try_from(crate::config::Config::default())
            .unwrap()
            .outbound;
        assert!(default.allow_cidrs.is_empty() && default.extra_ports.is_empty());
    }

    #[test]
    fn refusals_never_echo_the_address() {
        let e = refused("http://2852039166/").unwrap_err().to_string();
        assert_eq!(
            e,
            "the host is a link_local address, which outbound requests may not reach"
        );
        assert!(!e.contains("169.254"));
    }

    #[tokio::test]
    async fn the_system_resolver_feeds_the_same_checks() {
        let ips = SystemLookup.lookup("localhost").await.unwrap();
        assert!(!ips.is_empty());
        for ip in ips {
            assert_eq!(
                OutboundPolicy::default().check_ip(ip),
                Err(Refusal::Address(AddressClass::Loopback))
            );
        }
    }
}
