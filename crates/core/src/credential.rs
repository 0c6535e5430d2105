//! What a request's credential allows beyond its user's rights (AUTH-6, AUTH-7, AZ-5): the
//! scopes of API keys, their IP allowlists, and the org and conversation limits bots and keys
//! carry. A bot or key acts as its user, so everything the user may not do stays refused; the
//! [`Credential`] only narrows that further. Services consult it in two places — the org check
//! (`org_role`) and the conversation check (`access`) — and the HTTP layer checks scopes in one.

use crate::ids::*;
use crate::types::{KeyTier, Rejection};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// A permission an API key may carry. Which one a route needs is declared by its route group
/// (`policy::credentials::ScopeRule`), and shown per route as `x-scope`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    #[serde(rename = "messages:read")]
    MessagesRead,
    #[serde(rename = "messages:write")]
    MessagesWrite,
    #[serde(rename = "conversations:read")]
    ConversationsRead,
    #[serde(rename = "conversations:admin")]
    ConversationsAdmin,
    #[serde(rename = "org:read")]
    OrgRead,
    #[serde(rename = "org:admin")]
    OrgAdmin,
    #[serde(rename = "files:write")]
    FilesWrite,
    #[serde(rename = "webhooks:admin")]
    WebhooksAdmin,
}

impl Scope {
    pub const ALL: &'static [Scope] = &[
        Self::MessagesRead,
        Self::MessagesWrite,
        Self::ConversationsRead,
        Self::ConversationsAdmin,
        Self::OrgRead,
        Self::OrgAdmin,
        Self::FilesWrite,
        Self::WebhooksAdmin,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MessagesRead => "messages:read",
            Self::MessagesWrite => "messages:write",
            Self::ConversationsRead => "conversations:read",
            Self::ConversationsAdmin => "conversations:admin",
            Self::OrgRead => "org:read",
            Self::OrgAdmin => "org:admin",
            Self::FilesWrite => "files:write",
            Self::WebhooksAdmin => "webhooks:admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        Self::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                Rejection::new(
                    "invalid_value",
                    format!("must be one of: {}", all.join(", ")),
                )
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an IP allowlist: a CIDR block (`10.0.0.0/8`, `2001:db8::/32`) or a single
/// address (`203.0.113.7`, meaning /32 or /128). Host bits are cleared, so the stored and shown
/// form is canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let raw = raw.trim();
        let net = match raw.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => raw.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                Rejection::new(
                    "invalid_format",
                    "must be a CIDR block such as 10.0.0.0/8, or an IP address",
                )
            })?,
        };
        Ok(Self(net.trunc()))
    }

    /// Whether `ip` lies in the block; an IPv4 address seen as IPv6 (`::ffff:a.b.c.d`) counts
    /// as the IPv4 address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

/// One IPv4 octet without leading zeros, as `Ipv4Addr` reads it.
const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
/// A hextet of an IPv6 address.
const HEXTET: &str = "[0-9A-Fa-f]{1,4}";

crate::types::schema!(Cidr, {
    let v4 = format!(r"{OCTET}(?:\.{OCTET}){{3}}");
    let h = HEXTET;
    // Every way of writing eight hextets, with at most one `::` (RFC 4291 2.2).
    let v6 = [
        format!("(?:{h}:){{7}}{h}"),
        format!("(?:{h}:){{1,7}}:"),
        format!("(?:{h}:){{1,6}}:{h}"),
        format!("(?:{h}:){{1,5}}(?::{h}){{1,2}}"),
        format!("(?:{h}:){{1,4}}(?::{h}){{1,3}}"),
        format!("(?:{h}:){{1,3}}(?::{h}){{1,4}}"),
        format!("(?:{h}:){{1,2}}(?::{h}){{1,5}}"),
        format!("{h}:(?::{h}){{1,6}}"),
        format!(":(?:(?::{h}){{1,7}}|:)"),
        // The last 32 bits as an IPv4 address (`::ffff:192.0.2.1`), `::` for 1 or more groups.
        format!("(?:{h}:){{6}}{v4}"),
        format!("::(?:{h}:){{0,5}}{v4}"),
        format!("{h}::(?:{h}:){{0,4}}{v4}"),
        format!("{h}(?::{h}){{1}}::(?:{h}:){{0,3}}{v4}"),
        format!("{h}(?::{h}){{2}}::(?:{h}:){{0,2}}{v4}"),
        format!("{h}(?::{h}){{3}}::(?:{h}:)?{v4}"),
        format!("{h}(?::{h}){{4}}::{v4}"),
    ]
    .join("|");
    let ws = crate::types::WHITE_SPACE;
    crate::types::string_schema(
        "An IPv4 or IPv6 address, or a CIDR block such as 10.0.0.0/8 or 2001:db8::/32",
        2,
        None,
        &format!(
            "^[{ws}]*(?:{v4}(?:/(?:3[0-2]|[12]?[0-9]))?|(?:{v6})(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)[{ws}]*$"
        ),
    )
});

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<String> for Cidr {
    type Error = Rejection;
    fn try_from(raw: String) -> Result<Self, Rejection> {
        Self::parse(&raw)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        c.to_string()
    }
}

/// Which surface a request came through, where that changes what is recorded about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Surface {
    /// The REST API or the gateway.
    #[default]
    Api,
    /// `POST /mcp`: an outside AI agent acting with the credential (MCP-3), whose writes
    /// are audited.
    Mcp,
}

impl Surface {
    /// How an audit row names it (`detail.via`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Mcp => "mcp",
        }
    }
}

/// How a request authenticated, and so what it may do beyond its user's rights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credential {
    /// A login session: exactly the user's rights.
    #[default]
    Session,
    /// A bot's token: the bot account's rights, in its org only, and in `conversations` only
    /// when they are listed.
    Bot {
        bot: BotId,
        org: OrgId,
        conversations: Option<Vec<ConversationId>>,
    },
    /// An API key: its owner's current rights, in its org only, capped by `scopes` and (when
    /// listed) `conversations`.
    ApiKey {
        key: ApiKeyId,
        org: OrgId,
        scopes: Vec<Scope>,
        conversations: Option<Vec<ConversationId>>,
        tier: KeyTier,
    },
    /// An OAuth access token (MCP-2): its user's current rights, in the grant's org only,
    /// capped by the granted `scopes`; accepted on `/mcp` only (bound to the MCP resource).
    OAuth {
        grant: GrantId,
        org: OrgId,
        scopes: Vec<Scope>,
    },
}

impl Credential {
    /// The only org a bot or key may act in; `None` for sessions.
    #[must_use]
    pub fn org(&self) -> Option<OrgId> {
        match self {
            Self::Session => None,
            Self::Bot { org, .. } | Self::ApiKey { org, .. } | Self::OAuth { org, .. } => {
                Some(*org)
            }
        }
    }

    /// The conversations a bot or key is limited to, when it is.
    #[must_use]
    pub fn conversations(&self) -> Option<&[ConversationId]> {
        match self {
            Self::Session | Self::OAuth { .. } => None,
            Self::Bot { conversations, .. } | Self::ApiKey { conversations, .. } => {
                conversations.as_deref()
            }
        }
    }

    /// Whether the credential reaches into `org` at all.
    #[must_use]
    pub fn covers_org(&self, org: OrgId) -> bool {
        self.org().is_none_or(|o| o == org)
    }

    /// Whether the credential reaches conversation `conv` of `org`.
    #[must_use]
    pub fn covers_conversation(&self, org: OrgId, conv: ConversationId) -> bool {
        self.covers_org(org) && self.conversations().is_none_or(|list| list.contains(&conv))
    }

    /// Whether a request needing `scope` is within the credential. Sessions and bots have no
    /// scopes: their account's rights are the whole limit.
    #[must_use]
    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            Self::ApiKey { scopes, .. } | Self::OAuth { scopes, .. } => scopes.contains(&scope),
            Self::Session | Self::Bot { .. } => true,
        }
    }

    /// Whether this is a bot, key or OAuth grant (limited to one org), rather than a login
    /// session.
    #[must_use]
    pub const fn is_limited(&self) -> bool {
        !matches!(self, Self::Session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scopes_round_trip_as_text() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()).unwrap(), *s);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), *s);
        }
        assert!(Scope::parse("messages:delete").is_err());
        assert!(serde_json::from_str::<Scope>("\"messages_read\"").is_err());
    }

    #[test]
    fn cidrs_parse_canonically_and_match() {
        let net = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains("10.200.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::1/32").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        for bad in ["", "10.0.0.0/33", "300.1.1.1", "localhost", "10.0.0.0/8/8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} is refused");
        }
    }

    proptest! {
        #[test]
        fn any_address_is_in_its_own_block(a in any::<u32>(), len in 0u8..=32) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(a));
            let c = Cidr::parse(&format!("{ip}/{len}")).unwrap();
            prop_assert!(c.contains(ip));
        }
    }

    #[test]
    fn limits_narrow_by_org_conversation_and_scope() {
        let org = OrgId::new();
        let conv = ConversationId::new();
        let other = ConversationId::new();
        assert!(Credential::Session.covers_conversation(OrgId::new(), conv));
        let key = Credential::ApiKey {
            key: ApiKeyId::new(),
            org,
            scopes: vec![Scope::MessagesRead],
            conversations: Some(vec![conv]),
            tier: KeyTier::Free,
        };
        assert!(key.covers_conversation(org, conv));
        assert!(!key.covers_conversation(org, other));
        assert!(!key.covers_conversation(OrgId::new(), conv));
        assert!(key.allows(Scope::MessagesRead));
        assert!(!key.allows(Scope::MessagesWrite));
        let bot = Credential::Bot {
            bot: BotId::new(),
            org,
            conversations: None,
        };
        assert!(bot.covers_conversation(org, other));
        assert!(!bot.covers_org(OrgId::new()));
        assert!(bot.allows(Scope::OrgAdmin));
        assert!(bot.is_limited() && !Credential::Session.is_limited());
        let oauth = Credential::OAuth {
            grant: GrantId::new(),
            org,
            scopes: vec![Scope::MessagesRead],
        };
        assert!(oauth.is_limited() && oauth.covers_conversation(org, other));
        assert!(!oauth.covers_org(OrgId::new()));
        assert!(oauth.allows(Scope::MessagesRead) && !oauth.allows(Scope::MessagesWrite));
        assert_eq!(oauth.conversations(), None);
    }
}
