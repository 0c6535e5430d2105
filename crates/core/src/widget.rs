//! The embeddable support widget's values (WEB-4): exact site origins, the identity mode, a
//! widget conversation's status, the visitor's session id, the host's identity signature and
//! the agent's handoff marker. Each is parsed once at the edge; nothing here reads a request.

use crate::types::{parse_from_string, schema, string_schema, Rejection};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

/// Allowed origins per widget key.
pub const MAX_ORIGINS: usize = 20;
/// Widget keys per org.
pub const MAX_KEYS_PER_ORG: usize = 50;

/// A site origin as a browser sends it in `Origin`: `http` or `https`, a host, and a port only
/// when it is not the scheme's default — nothing else (no path, query, user or wildcard). The
/// host is kept lowercase, so comparing two origins is comparing strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WidgetOrigin(String);

fn host_ok(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

impl WidgetOrigin {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let bad = || {
            Rejection::new(
                "invalid_origin",
                "must be an exact origin: http(s)://host[:port], no path or wildcard",
            )
        };
        if raw.len() > 300 {
            return Err(bad());
        }
        let lower = raw.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
        let default_port = match scheme {
            "https" => "443",
            "http" => "80",
            _ => return Err(bad()),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@', '*', ' ', '\\']) {
            return Err(bad());
        }
        // An IPv6 host holds colons; the port follows its closing bracket.
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if !host_ok(host) {
            return Err(bad());
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.len() <= 5 && !p.starts_with('0') => {
                    (p != default_port).then_some(p)
                }
                _ => return Err(bad()),
            },
        };
        Ok(Self(match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        }))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<WidgetOrigin> for String {
    fn from(o: WidgetOrigin) -> Self {
        o.0
    }
}

impl fmt::Display for WidgetOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `list` holds `origin` as a browser sent it (parsed the same way, so a trailing slash
/// or upper case does not matter; an unparsable `Origin` such as `null` matches nothing).
#[must_use]
pub fn origin_listed(list: &[WidgetOrigin], origin: &str) -> bool {
    WidgetOrigin::parse(origin).is_ok_and(|o| list.contains(&o))
}

/// A visitor session's public id: 1–128 of `A-Z a-z 0-9 . _ : -` (WEB-4). Never enough on its
/// own: every call also carries the session's visitor secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WidgetSessionId(String);

impl WidgetSessionId {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Rejection::new(
                "invalid_format",
                "must be 1–128 of A-Z a-z 0-9 . _ : -",
            ))
        }
    }

    /// A new random id (`ws_` and 32 hex digits).
    #[must_use]
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!("ws_{}", crate::audit::hex(&bytes)))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<WidgetSessionId> for String {
    fn from(s: WidgetSessionId) -> Self {
        s.0
    }
}

/// The host's id of a signed-in visitor: 1–256 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct ExternalUserId(String);

impl ExternalUserId {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.is_empty() || raw.chars().count() > 256 {
            return Err(Rejection::new(
                "invalid_length",
                "must be 1 to 256 characters",
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(Rejection::new(
                "invalid_characters",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

parse_from_string!(WidgetOrigin, WidgetSessionId, ExternalUserId);

schema!(
    WidgetOrigin,
    string_schema(
        "An exact site origin: http(s)://host[:port] (no path, query or wildcard)",
        8,
        Some(300),
        concat!(
            r"^[Hh][Tt][Tt][Pp][Ss]?://",
            r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
            r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)",
            r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?/?$",
        ),
    )
);
schema!(
    WidgetSessionId,
    string_schema(
        "A visitor session id made by the server",
        1,
        Some(128),
        r"^[A-Za-z0-9._:-]{1,128}$",
    )
);
schema!(
    ExternalUserId,
    string_schema(
        "The host application's id of the signed-in visitor: 1–256 characters, no control characters",
        1,
        Some(256),
        r"^[^\x00-\x1f\x7f-\x9f]{1,256}$",
    )
);

crate::types::closed_enum!(
    /// Whether visitors must be signed by the host (WEB-4): `required` refuses unsigned and
    /// wrongly signed visitors; `optional` lets anonymous visitors chat.
    IdentityMode { Optional = "optional", Required = "required" }
);

crate::types::closed_enum!(
    /// A widget conversation's state: `bot` while the key's AI agent answers, `open` once handed
    /// to people, `resolved` when a person closed it.
    WidgetStatus { Bot = "bot", Open = "open", Resolved = "resolved" }
);

crate::types::closed_enum!(
    /// Where a conversation comes from, when it is not an ordinary one: `widget`, a support
    /// widget conversation (WEB-4).
    ConversationSource { Widget = "widget" }
);

/// The identity secret's length in bytes (shown as 64 hex digits).
const IDENTITY_SECRET_BYTES: usize = 32;

/// A new identity secret: 64 lowercase hex digits. The host signs with its text as the key.
#[must_use]
pub fn new_identity_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; IDENTITY_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    crate::audit::hex(&bytes)
}

/// HMAC-SHA256 of `user_id` keyed with the identity secret's text, as lowercase hex: what the
/// host's server computes and puts in the widget's `identity.hash`.
#[must_use]
pub fn identity_hash(secret: &[u8], user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(user_id.as_bytes());
    crate::audit::hex(&mac.finalize().into_bytes())
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Whether `hash` (hex, either case) is the identity signature of `user_id`: the MAC is
/// compared in constant time (`Mac::verify_slice`).
#[must_use]
pub fn identity_verified(secret: &[u8], user_id: &str, hash: &str) -> bool {
    let Some(given) = unhex(hash.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(user_id.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The line an agent answers with when a person should take over (spec silent; see
/// ARCHITECTURE "Support widget").
pub const HANDOFF_MARKER: &str = "[handoff]";

/// What the agent of a widget conversation is told after its own system prompt.
pub const HANDOFF_INSTRUCTION: &str = "You are answering a visitor of a website through its \
    support chat. If the visitor asks for a person, or you cannot help them, end your answer \
    with a line containing only [handoff]: the conversation is then handed to the support team.";

/// The answer without its handoff marker lines, when it had one.
#[must_use]
pub fn strip_handoff(text: &str) -> Option<String> {
    let mut found = false;
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let marker = line.trim().eq_ignore_ascii_case(HANDOFF_MARKER);
            found |= marker;
            !marker
        })
        .collect();
    found.then(|| kept.join("\n").trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The OpenAPI pattern of [`WidgetOrigin`], as the document states it.
    fn documented_pattern() -> regex::Regex {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(WidgetOrigin::schema()).unwrap();
        regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap()
    }

    proptest! {
        #[test]
        fn the_documented_pattern_is_what_parse_accepts(
            raw in "[hH][tT]{2}[pP][sS]?://[a-zA-Z0-9.:\\[\\]-]{0,24}/?[ ?]?",
        ) {
            let pattern = documented_pattern();
            prop_assert_eq!(pattern.is_match(&raw), WidgetOrigin::parse(&raw).is_ok(), "{}", raw);
        }
    }

    #[test]
    fn origins_are_exact() {
        let ok =
            |raw: &str, want: &str| assert_eq!(WidgetOrigin::parse(raw).unwrap().as_str(), want);
        ok("https://Example.com", "https://example.com");
        ok("https://a.example:65535", "https://a.example:65535");
        ok("https://example.com/", "https://example.com");
        ok("https://example.com:443", "https://example.com");
        ok("http://127.0.0.1:8080", "http://127.0.0.1:8080");
        ok("http://[::1]:3000", "http://[::1]:3000");
        for bad in [
            "*",
            "null",
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://*.example.com",
            "https://user@example.com",
            "https://example.com?x",
            "https://example.com:0",
            "https://example.com:99999",
            "https://exa mple.com",
            "https://",
            "javascript://x",
            " https://example.com",
            "https://example.com:65536",
            "https://-a.example",
            "https://a..example",
        ] {
            assert!(WidgetOrigin::parse(bad).is_err(), "{bad}");
        }
        let list = vec![WidgetOrigin::parse("https://a.example").unwrap()];
        assert!(origin_listed(&list, "https://A.example"));
        assert!(!origin_listed(&list, "https://a.example.evil"));
        assert!(!origin_listed(&list, "null"));
    }

    #[test]
    fn identity_signatures() {
        let secret = b"0123";
        let h = identity_hash(secret, "user-1");
        assert!(identity_verified(secret, "user-1", &h));
        assert!(identity_verified(secret, "user-1", &h.to_uppercase()));
        assert!(!identity_verified(secret, "user-2", &h));
        assert!(!identity_verified(b"other", "user-1", &h));
        assert!(!identity_verified(secret, "user-1", "zz"));
        assert!(!identity_verified(secret, "user-1", ""));
        assert_eq!(new_identity_secret().len(), 64);
    }

    #[test]
    fn handoff_marker() {
        assert_eq!(strip_handoff("Sure.\n[handoff]").as_deref(), Some("Sure."));
        assert_eq!(strip_handoff("  [HANDOFF] ").as_deref(), Some(""));
        assert_eq!(strip_handoff("say [handoff] inline"), None);
        assert_eq!(strip_handoff("hello"), None);
    }

    #[test]
    fn session_ids() {
        assert!(WidgetSessionId::parse(WidgetSessionId::generate().as_str()).is_ok());
        assert!(WidgetSessionId::parse("").is_err());
        assert!(WidgetSessionId::parse("a b").is_err());
        assert!(WidgetSessionId::parse(&"a".repeat(129)).is_err());
    }
}
