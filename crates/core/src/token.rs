//! Opaque bearer secrets: `<prefix>_<43 chars of base64url: 256 random bits><8 hex: CRC-32>`.
//! The prefix says what a token is, the checksum rejects typos and forgeries without touching
//! the database, and only HMAC-SHA256(pepper, token) is ever stored or compared.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What a token is for; each kind has its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Invite,
    Bootstrap,
    /// An API key (AUTH-7), sent as `Authorization: Bearer cnv_k_…`.
    ApiKey,
    /// A bot's token (AUTH-6), sent as `Authorization: Bot cnv_b_…`.
    Bot,
    /// The short-lived ticket between a sign-in's password step and its second factor.
    MfaChallenge,
    /// A support widget's publishable key (WEB-4), sent as `X-Widget-Key: cnv_w_…`.
    WidgetKey,
    /// A widget visitor session's secret (WEB-4), sent as `X-Widget-Visitor: cnv_v_…`; valid on
    /// the widget routes only.
    Visitor,
    /// An OAuth access token (MCP-2), valid on `/mcp` only: `Authorization: Bearer cnv_oa_…`.
    OAuthAccess,
    /// An OAuth refresh token (MCP-2), rotated on every use.
    OAuthRefresh,
    /// An OAuth authorization code (MCP-2): 60 seconds, single use.
    OAuthCode,
    /// A confidential OAuth client's secret (MCP-2).
    OAuthClientSecret,
    /// A one-time link to set an account's password, made by a server admin: an hour.
    PasswordReset,
}

impl TokenKind {
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Session => "cnv_s",
            Self::Invite => "cnv_inv",
            Self::Bootstrap => "cnv_boot",
            Self::ApiKey => "cnv_k",
            Self::Bot => "cnv_b",
            Self::MfaChallenge => "cnv_mfa",
            Self::WidgetKey => "cnv_w",
            Self::Visitor => "cnv_v",
            Self::OAuthAccess => "cnv_oa",
            Self::OAuthRefresh => "cnv_or",
            Self::OAuthCode => "cnv_oc",
            Self::OAuthClientSecret => "cnv_ocs",
            Self::PasswordReset => "cnv_pr",
        }
    }

    pub const ALL: [Self; 13] = [
        Self::Session,
        Self::Invite,
        Self::Bootstrap,
        Self::ApiKey,
        Self::Bot,
        Self::MfaChallenge,
        Self::WidgetKey,
        Self::Visitor,
        Self::OAuthAccess,
        Self::OAuthRefresh,
        Self::OAuthCode,
        Self::OAuthClientSecret,
        Self::PasswordReset,
    ];

    /// The kind whose prefix (and `_`) `token` starts with, well-formed or not: what a token
    /// claims to be, so it is checked as that (and fails there if it is not).
    #[must_use]
    pub fn claimed_by(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| {
            token
                .strip_prefix(kind.prefix())
                .is_some_and(|rest| rest.starts_with('_'))
        })
    }
}

const BODY_LEN: usize = 43;
const CHECK_LEN: usize = 8;

fn checksum(prefix: &str, body: &str) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(prefix.as_bytes());
    h.update(body.as_bytes());
    format!("{:08x}", h.finalize())
}

/// A new random token of the kind.
#[must_use]
pub fn generate(kind: TokenKind) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let prefix = kind.prefix();
    SecretString::from(format!("{prefix}_{body}{}", checksum(prefix, &body)))
}

/// Whether `token` is well-formed for `kind`: prefix, length, alphabet and checksum. Checking
/// this first means malformed tokens never cost a database query.
#[must_use]
pub fn well_formed(kind: TokenKind, token: &str) -> bool {
    let Some(rest) = token
        .strip_prefix(kind.prefix())
        .and_then(|r| r.strip_prefix('_'))
    else {
        return false;
    };
    if rest.len() != BODY_LEN + CHECK_LEN || !rest.is_ascii() {
        return false;
    }
    let (body, check) = rest.split_at(BODY_LEN);
    if base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .is_err()
    {
        return false;
    }
    bool::from(
        checksum(kind.prefix(), body)
            .as_bytes()
            .ct_eq(check.as_bytes()),
    )
}

/// The last four characters of a token: part of its checksum, never of its random body, so
/// they can be kept and shown (`cnv_k_****abcd`) without revealing anything secret.
#[must_use]
pub fn hint(token: &str) -> String {
    let skip = token.chars().count().saturating_sub(4);
    token.chars().skip(skip).collect()
}

/// How a token of `kind` is shown after creation: its prefix and [`hint`] only.
#[must_use]
pub fn masked(kind: TokenKind, hint: &str) -> String {
    format!("{}_****{hint}", kind.prefix())
}

/// How an answer shows a token of `kind`: the token itself where `revealed` (the answer that
/// created or rotated it, shown once), [`masked`] everywhere else.
#[must_use]
pub fn shown(kind: TokenKind, hint: &str, revealed: Option<&SecretString>) -> String {
    revealed.map_or_else(|| masked(kind, hint), |t| t.expose_secret().to_owned())
}

/// The keyed hash under which a token is stored.
#[must_use]
pub fn hash(pepper: &SecretBox<[u8; 32]>, token: &str) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(pepper.expose_secret()).unwrap_or_else(|_| unreachable!());
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The CSRF token of a cookie session: HMAC(csrf key, session id), so it can be shown again
/// after a reload without being stored.
#[must_use]
pub fn csrf_token(key: &SecretBox<[u8; 32]>, session_id: &crate::SessionId) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.expose_secret()).unwrap_or_else(|_| unreachable!());
    mac.update(b"csrf:");
    mac.update(session_id.0.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of two secrets of any length.
#[must_use]
pub fn secrets_equal(a: &str, b: &str) -> bool {
    // Compare fixed-size digests so that neither content nor length leaks through timing.
    use sha2::Digest;
    let da = Sha256::digest(a.as_bytes());
    let db = Sha256::digest(b.as_bytes());
    bool::from(da.ct_eq(&db))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let a = generate(TokenKind::Session);
        let b = generate(TokenKind::Session);
        assert!(well_formed(TokenKind::Session, a.expose_secret()));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(!well_formed(TokenKind::Invite, a.expose_secret()));
    }

    proptest! {
        #[test]
        fn any_single_character_change_breaks_the_checksum(pos in 6usize..57, c in "[A-Za-z0-9_-]") {
            let t = generate(TokenKind::Session);
            let s = t.expose_secret();
            let mut chars: Vec<char> = s.chars().collect();
            let c = c.chars().next().unwrap();
            prop_assume!(chars[pos] != c);
            chars[pos] = c;
            let broken: String = chars.into_iter().collect();
            prop_assert!(!well_formed(TokenKind::Session, &broken));
        }
    }

    #[test]
    fn credential_kinds_are_distinct_and_masks_hide_the_body() {
        let key = generate(TokenKind::ApiKey);
        let bot = generate(TokenKind::Bot);
        assert!(key.expose_secret().starts_with("cnv_k_"));
        assert!(bot.expose_secret().starts_with("cnv_b_"));
        assert!(well_formed(TokenKind::ApiKey, key.expose_secret()));
        assert!(!well_formed(TokenKind::Bot, key.expose_secret()));
        assert!(!well_formed(TokenKind::Session, bot.expose_secret()));
        let h = hint(key.expose_secret());
        assert_eq!(h.len(), 4);
        assert!(
            key.expose_secret().ends_with(&h),
            "the hint is the checksum's tail"
        );
        assert_eq!(masked(TokenKind::ApiKey, &h), format!("cnv_k_****{h}"));
    }

    #[test]
    fn a_token_claims_the_kind_of_its_prefix() {
        for kind in TokenKind::ALL {
            let t = generate(kind);
            assert_eq!(TokenKind::claimed_by(t.expose_secret()), Some(kind));
        }
        assert_eq!(TokenKind::claimed_by("cnv_k_"), Some(TokenKind::ApiKey));
        assert_eq!(TokenKind::claimed_by("cnv_kx_1"), None);
        assert_eq!(TokenKind::claimed_by("cnv_k"), None);
        assert_eq!(
            TokenKind::claimed_by("cnv_ocs_x"),
            Some(TokenKind::OAuthClientSecret)
        );
        assert_eq!(
            TokenKind::claimed_by("cnv_oc_x"),
            Some(TokenKind::OAuthCode)
        );
        assert_eq!(TokenKind::claimed_by(""), None);
    }

    #[test]
    fn hashes_depend_on_the_pepper() {
        let t = generate(TokenKind::Session);
        let p1 = SecretBox::new(Box::new([1u8; 32]));
        let p2 = SecretBox::new(Box::new([2u8; 32]));
        assert_ne!(hash(&p1, t.expose_secret()), hash(&p2, t.expose_secret()));
        assert_eq!(hash(&p1, t.expose_secret()), hash(&p1, t.expose_secret()));
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }
}
