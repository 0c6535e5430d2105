//! Where NATS is and how to log in to it: the URL (one server or several, comma-separated)
//! carries the credentials (token, user and password, or an NKey seed).

/// What a NATS URL says about authenticating to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NatsAuth {
    None,
    /// `nats://token@host`.
    Token(String),
    /// `nats://user:password@host`.
    UserPassword(String, String),
    /// `nats://SU…@host`: an NKey user seed (58 characters starting with `SU`).
    NKey(String),
}

/// Decodes `%XX` escapes (URL user info is kept escaped).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_nkey_seed(text: &str) -> bool {
    text.len() == 58
        && text.starts_with("SU")
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// Splits a NATS URL (one server, or several separated by commas) into the server addresses,
/// without credentials, and the credentials they carry (every server that names some must
/// name the same).
pub(super) fn parse_url(url: &str) -> Result<(Vec<async_nats::ServerAddr>, NatsAuth), String> {
    let mut servers = Vec::new();
    let mut auth = NatsAuth::None;
    for part in url.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr: async_nats::ServerAddr = part
            .parse()
            .map_err(|e| format!("nats_url is not a NATS URL: {e}"))?;
        let mut inner = addr.into_inner();
        let user = percent_decode(inner.username());
        let password = inner.password().map(percent_decode);
        let here = match (user.is_empty(), password) {
            (true, None) => NatsAuth::None,
            (true, Some(_)) => return Err("nats_url has a password but no user".into()),
            (false, Some(p)) => NatsAuth::UserPassword(user, p),
            (false, None) if is_nkey_seed(&user) => NatsAuth::NKey(user),
            (false, None) => NatsAuth::Token(user),
        };
        if here != NatsAuth::None {
            if auth != NatsAuth::None && auth != here {
                return Err("the servers of nats_url carry different credentials".into());
            }
            auth = here;
        }
        let _ = inner.set_username("");
        let _ = inner.set_password(None);
        servers.push(
            async_nats::ServerAddr::from_url(inner)
                .map_err(|e| format!("nats_url is not a NATS URL: {e}"))?,
        );
    }
    if servers.is_empty() {
        return Err("nats_url names no server".into());
    }
    Ok((servers, auth))
}

/// Whether a NATS URL authenticates (token, user and password, or NKey); `Err` when it is not
/// a NATS URL. Production refuses one that does not, unless acknowledged.
pub fn url_has_credentials(url: &str) -> Result<bool, String> {
    parse_url(url).map(|(_, auth)| auth != NatsAuth::None)
}
