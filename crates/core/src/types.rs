//! Validated values. Each is made only through `parse`, so a value of the type is always
//! acceptable; the HTTP edge parses raw input into these and names the field on failure.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// Why a raw value was refused: a machine code and a human sentence. The caller adds the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

/// Lets a validated type be deserialized straight from a JSON string, so a bad value is
/// reported with the path of its field.
macro_rules! parse_from_string {
    ($($name:ident),*) => {$(
        impl TryFrom<String> for $name {
            type Error = Rejection;
            fn try_from(raw: String) -> Result<Self, Rejection> {
                Self::parse(&raw)
            }
        }
    )*};
}
pub(crate) use parse_from_string;

impl Rejection {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// `raw` as owned text when it has the expected shape (`ok`), else `invalid_format` saying what
/// it must be.
fn shaped(raw: &str, ok: bool, expected: &'static str) -> Result<String, Rejection> {
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Rejection::new("invalid_format", expected))
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A login name: 3–32 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit. Unique without
/// regard to case (see [`Username::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let len = raw.chars().count();
        if !(3..=32).contains(&len) {
            return Err(Rejection::new(
                "invalid_length",
                "must be 3 to 32 characters",
            ));
        }
        let first_ok = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let all_ok = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        shaped(
            raw,
            first_ok && all_ok,
            "may contain only letters, digits, '_', '.' and '-', and must start with a letter or digit",
        )
        .map(Self)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and lookups use.
    #[must_use]
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, Rejection> {
                let trimmed = raw.trim();
                let len = trimmed.chars().count();
                if len == 0 {
                    return Err(Rejection::new("empty", "must not be empty"));
                }
                if len > $max {
                    return Err(Rejection::new("too_long", format!("must be at most {} characters", $max)));
                }
                if has_control(trimmed) {
                    return Err(Rejection::new("invalid_characters", "must not contain control characters"));
                }
                Ok(Self(trimmed.to_owned()))
            }

            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            #[must_use]
            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

bounded_text!(
    /// A person's shown name: 1–64 characters after trimming, no control characters.
    DisplayName, 64
);
bounded_text!(
    /// The name of an org, team or conversation: 1–100 characters, no control characters.
    Name, 100
);

/// An e-mail address, checked only for shape (one `@`, no spaces, at most 254 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let raw = raw.trim();
        let ok = raw.chars().count() <= 254
            && raw.split('@').count() == 2
            && raw.split('@').all(|p| !p.is_empty())
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
        shaped(raw, ok, "must be an e-mail address").map(Self)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Submitted message content: 1–4000 Unicode scalar values, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MessageText(String);

pub const MESSAGE_MAX_CHARS: usize = 4000;

impl MessageText {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.contains('\0') {
            return Err(Rejection::new(
                "invalid_characters",
                "must not contain NUL characters",
            ));
        }
        let len = raw.chars().count();
        if raw.trim().is_empty() {
            return Err(Rejection::new("empty", "must not be empty"));
        }
        if len > MESSAGE_MAX_CHARS {
            return Err(Rejection::new(
                "too_long",
                format!("must be at most {MESSAGE_MAX_CHARS} characters"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen idempotency key: 1–128 of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
        shaped(raw, ok, "must be 1 to 128 of A-Z a-z 0-9 . _ : -").map(Self)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! closed_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, Rejection> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Rejection::new("invalid_value", format!(
                        "must be one of: {}", [$($text),+].join(", ")))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use closed_enum;

closed_enum!(
    /// Who acted, in an audit row (`oauth_grant`: an MCP client through a user's OAuth grant).
    ActorType { User = "user", Bot = "bot", ApiKey = "api_key", OAuthGrant = "oauth_grant", Management = "management", System = "system", Anonymous = "anonymous" }
);
closed_enum!(
    /// How an audited event ended.
    Outcome { Success = "success", Failure = "failure", Denied = "denied" }
);
closed_enum!(
    /// A member's role in an organization, strongest first.
    OrgRole { Owner = "owner", Admin = "admin", Member = "member", Viewer = "viewer" }
);
closed_enum!(
    /// A participant's role in a conversation.
    ConversationRole { Owner = "owner", Moderator = "moderator", Member = "member" }
);
closed_enum!(
    /// `direct`: exactly two people, private, unnamed. `group`: anything else.
    ConversationKind { Direct = "direct", Group = "group" }
);
closed_enum!(
    /// How message content is interpreted: plain text (default) or sanitized HTML.
    MessageFormat { Text = "text", Html = "html" }
);
closed_enum!(
    /// Where a message stands (AGENT-3): `complete` (the default: written at once, or an
    /// answer that finished), `streaming` (an agent's answer being written; the content is the
    /// text so far), `failed` or `stopped` (ended early, keeping the text written until then).
    MessageStatus { Complete = "complete", Streaming = "streaming", Failed = "failed", Stopped = "stopped" }
);
closed_enum!(
    /// What happens to an erased user's messages.
    ErasurePolicy { Tombstone = "tombstone", Anonymise = "anonymise" }
);
closed_enum!(
    /// Whether an account is a person or a bot.
    UserKind { User = "user", Bot = "bot" }
);
closed_enum!(
    /// Who may create accounts.
    RegistrationMode { Closed = "closed", Invite = "invite", Open = "open" }
);
closed_enum!(
    /// An API key's rate-limit tier (RATE-1); only org owners and admins set one above `free`.
    KeyTier { Free = "free", Pro = "pro", Team = "team", Enterprise = "enterprise" }
);

impl OrgRole {
    /// Owner 3 … Viewer 0; used only by the policy module.
    #[must_use]
    pub(crate) const fn rank(self) -> u8 {
        match self {
            Self::Owner => 3,
            Self::Admin => 2,
            Self::Member => 1,
            Self::Viewer => 0,
        }
    }
}

/// Who can see (and so join) a conversation besides its participants. On the wire:
/// `"private"`, `"org"` or `{"teams":[team ids]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Visibility {
    Scope(VisibilityScope),
    Teams {
        #[schema(min_items = 1)]
        teams: Vec<crate::TeamId>,
    },
}

/// The two visibilities that need no list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisibilityScope {
    Private,
    Org,
}

impl Visibility {
    /// The stored kind tag: `private`, `org` or `teams`.
    #[must_use]
    pub const fn tag(&self) -> &'static str {
        match self {
            Self::Scope(VisibilityScope::Private) => "private",
            Self::Scope(VisibilityScope::Org) => "org",
            Self::Teams { .. } => "teams",
        }
    }

    #[must_use]
    pub fn teams(&self) -> &[crate::TeamId] {
        match self {
            Self::Teams { teams } => teams,
            Self::Scope(_) => &[],
        }
    }

    pub const PRIVATE: Self = Self::Scope(VisibilityScope::Private);
    pub const ORG: Self = Self::Scope(VisibilityScope::Org);
}

parse_from_string!(
    Username,
    DisplayName,
    Name,
    Email,
    MessageText,
    IdempotencyKey
);

/// Unicode White_Space, which `str::trim` removes, as a regular-expression class body (JSON
/// Schema's `\s` means different things to different engines).
pub(crate) const WHITE_SPACE: &str =
    r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// `char::is_control` (Unicode Cc) as a class body.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

/// The JSON Schema of a string `parse` accepts: its length in characters and a pattern, for
/// the OpenAPI document (CORE-11), so clients and schemathesis see the rules the code applies.
pub(crate) fn string_schema(
    description: &str,
    min_len: usize,
    max_len: Option<usize>,
    pattern: &str,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(min_len))
        .max_length(max_len)
        .pattern(Some(pattern))
        .into()
}

/// Makes a validated type a named OpenAPI schema.
macro_rules! schema {
    ($name:ty, $schema:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use schema;

/// Text that is trimmed, then must be 1 to `max` characters free of control characters: what
/// `bounded_text!` accepts. The length is in the pattern, as surrounding white space does not
/// count.
fn trimmed_text_schema(description: &str, max: usize) -> RefOr<Schema> {
    let ws = WHITE_SPACE;
    let edge = format!("[^{CONTROL}{ws}]");
    let inner = max - 2;
    string_schema(
        description,
        1,
        None,
        &format!("^[{ws}]*{edge}(?:[^{CONTROL}]{{0,{inner}}}{edge})?[{ws}]*$"),
    )
}

schema!(
    Username,
    string_schema(
        "3–32 of A-Z a-z 0-9 _ . -, starting with a letter or digit; unique without regard to case",
        3,
        Some(32),
        "^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$",
    )
);
schema!(
    DisplayName,
    trimmed_text_schema(
        "1–64 characters after trimming surrounding white space, no control characters",
        64
    )
);
schema!(
    Name,
    trimmed_text_schema(
        "1–100 characters after trimming surrounding white space, no control characters",
        100
    )
);
schema!(
    Email,
    string_schema(
        "An e-mail address: one @ with text on both sides, no white space or control characters, at most 254 characters",
        3,
        None,
        // Surrounding white space is trimmed first and does not count.
        &format!(
            "^[{WHITE_SPACE}]*(?=[^{WHITE_SPACE}]{{3,254}}[{WHITE_SPACE}]*$)[^@{CONTROL}{WHITE_SPACE}]+@[^@{CONTROL}{WHITE_SPACE}]+[{WHITE_SPACE}]*$"
        ),
    )
);
schema!(
    MessageText,
    string_schema(
        "1–4000 characters (Unicode scalar values), not only white space, no NUL",
        1,
        Some(MESSAGE_MAX_CHARS),
        &format!(r"^[^\x00]*[^\x00{WHITE_SPACE}][^\x00]*$"),
    )
);
schema!(
    IdempotencyKey,
    string_schema(
        "1–128 of A-Z a-z 0-9 . _ : -",
        1,
        Some(128),
        "^[A-Za-z0-9._:-]{1,128}$",
    )
);

/// A page size: 1–100, default 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const MAX: u32 = 100;

    pub fn parse(raw: Option<i64>) -> Result<Self, Rejection> {
        match raw {
            None => Ok(Self(50)),
            Some(n) if (1..=i64::from(Self::MAX)).contains(&n) => Ok(Self(n as u32)),
            Some(_) => Err(Rejection::new("out_of_range", "must be between 1 and 100")),
        }
    }

    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(50)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn message_text_accepts_exactly_its_range(s in "\\PC{1,4000}") {
            prop_assume!(!s.trim().is_empty());
            prop_assert!(MessageText::parse(&s).is_ok());
        }

        #[test]
        fn message_text_rejects_any_nul(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let s = format!("{a}\0{b}");
            prop_assert!(MessageText::parse(&s).is_err());
        }

        #[test]
        fn usernames_round_trip_and_fold(s in "[a-zA-Z0-9][a-zA-Z0-9_.-]{2,31}") {
            let u = Username::parse(&s).unwrap();
            prop_assert_eq!(u.as_str(), s.as_str());
            prop_assert_eq!(u.key(), s.to_ascii_lowercase());
        }

        #[test]
        fn usernames_with_other_characters_are_refused(s in "[a-z]{3,10}[ @/#!\\u{e9}][a-z]{0,5}") {
            prop_assert!(Username::parse(&s).is_err());
        }
    }

    #[test]
    fn message_text_bounds() {
        assert!(MessageText::parse("").is_err());
        assert!(MessageText::parse(&"a".repeat(4000)).is_ok());
        assert!(MessageText::parse(&"a".repeat(4001)).is_err());
        // 4000 multi-byte scalar values are still 4000 characters.
        assert!(MessageText::parse(&"é".repeat(4000)).is_ok());
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(Limit::parse(None).unwrap().get(), 50);
        assert!(Limit::parse(Some(0)).is_err());
        assert!(Limit::parse(Some(101)).is_err());
        assert_eq!(Limit::parse(Some(100)).unwrap().get(), 100);
    }

    #[test]
    fn closed_enums_refuse_unknown_values() {
        assert_eq!(OrgRole::parse("viewer").unwrap(), OrgRole::Viewer);
        assert!(OrgRole::parse("root").is_err());
        assert!(ConversationRole::parse("Owner").is_err());
    }
}
