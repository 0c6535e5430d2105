//! Second-factor codes: TOTP (RFC 6238 with SHA-1, 6 digits, 30-second steps, one step of skew
//! either way) and one-time recovery codes.
//!
//! Codes are computed from a time the caller passes in (the services' `Clock`), never from the
//! system time, and compared in constant time. Which step a code matched is returned so the
//! caller can refuse a replay (the store keeps the last accepted step per user).
//!
//! A recovery code is 16 characters of Crockford base32, shown as `xxxx-xxxx-xxxx-xxxx`: the
//! first group is a non-secret lookup prefix (unique among a user's codes), the other 60 bits
//! are the secret. The whole code is stored as an Argon2id hash under its prefix, so checking a
//! code costs one Argon2id verification.

use crate::types::Rejection;
use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::fmt;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Digits of a TOTP code.
pub const DIGITS: usize = 6;
/// Seconds per TOTP step.
pub const PERIOD_SECS: i64 = 30;
/// Steps before and after the current one that are accepted (clock drift, typing time).
pub const SKEW_STEPS: i64 = 1;
/// Bytes of a new TOTP secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Conclave";
/// How many recovery codes a user holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Characters of a recovery code's lookup prefix.
pub const RECOVERY_LOOKUP_LEN: usize = 4;
/// Characters of a whole recovery code (without separators).
pub const RECOVERY_CODE_LEN: usize = 16;

/// Crockford's base32 alphabet, lower-cased: no `i`, `l`, `o` or `u` to misread.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The TOTP step that contains `at`.
#[must_use]
pub fn time_step(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(PERIOD_SECS)
}

/// The TOTP generator for `secret` with `digits` digits. `new_unchecked` skips only the length
/// checks: `TotpSecret` guarantees at least 128 bits, and the callers pass 6 digits (8 for the
/// RFC test vectors).
fn generator(secret: &[u8], digits: usize) -> TOTP {
    TOTP::new_unchecked(
        Algorithm::SHA1,
        digits,
        0,
        PERIOD_SECS as u64,
        secret.to_vec(),
    )
}

/// A shared TOTP secret. Never printed; shown to its user once, at setup.
pub struct TotpSecret(SecretBox<Vec<u8>>);

impl TotpSecret {
    /// 160 fresh random bits.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        rand::rngs::OsRng.fill(&mut bytes[..]);
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// A secret read back from storage; at least 128 bits (RFC 4226).
    pub fn from_bytes(bytes: SecretBox<Vec<u8>>) -> Result<Self, &'static str> {
        if bytes.expose_secret().len() < 16 {
            return Err("a TOTP secret has at least 128 bits");
        }
        Ok(Self(bytes))
    }

    /// A secret from its base32 form (as shown at setup; padding and case are forgiven).
    pub fn from_base32(text: &str) -> Result<Self, &'static str> {
        let compact: String = text
            .chars()
            .filter(|c| *c != '=' && !c.is_ascii_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let bytes = totp_rs::Secret::Encoded(compact)
            .to_bytes()
            .map_err(|_| "a TOTP secret is base32")?;
        Self::from_bytes(SecretBox::new(Box::new(bytes)))
    }

    #[must_use]
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The RFC 4648 base32 form (no padding) that people type into an authenticator app.
    #[must_use]
    pub fn base32(&self) -> SecretString {
        SecretString::from(generator(self.expose_bytes(), DIGITS).get_secret_base32())
    }

    /// The `otpauth://` URI (Key Uri Format) an authenticator app reads from a QR code.
    #[must_use]
    pub fn otpauth_uri(&self, account: &str) -> SecretString {
        let issuer = percent_encode(ISSUER);
        let label = format!("{issuer}:{}", percent_encode(account));
        SecretString::from(format!(
            "otpauth://totp/{label}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD_SECS}",
            self.base32().expose_secret()
        ))
    }

    /// The code for one step.
    #[must_use]
    pub fn code_at_step(&self, step: i64) -> String {
        let secs = u64::try_from(step.saturating_mul(PERIOD_SECS)).unwrap_or(0);
        generator(self.expose_bytes(), DIGITS).generate(secs)
    }

    /// The step `code` belongs to, if it is the code of the step containing `at` or of one
    /// step either side. All three are computed and compared in constant time; when two match
    /// (a one-in-a-million coincidence) the current step wins, then the earlier one.
    #[must_use]
    pub fn matching_step(&self, code: &TotpCode, at: DateTime<Utc>) -> Option<i64> {
        let now = time_step(at);
        let given = code.0.expose_secret().as_bytes();
        let mut found: Option<i64> = None;
        // Later entries are preferred: next, previous, current.
        for step in [now + SKEW_STEPS, now - SKEW_STEPS, now] {
            let expected = self.code_at_step(step);
            let hit: bool = expected.as_bytes().ct_eq(given).into();
            if hit {
                found = Some(step);
            }
        }
        found
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Six digits, as typed (spaces removed).
#[derive(Clone)]
pub struct TotpCode(SecretString);

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode(<redacted>)")
    }
}

/// A recovery code, normalised: 16 characters of the alphabet, lower case, no separators.
#[derive(Clone)]
pub struct RecoveryCode(SecretString);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RecoveryCode").field(&self.lookup()).finish()
    }
}

impl RecoveryCode {
    /// A fresh random code.
    #[must_use]
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        let text: String = (0..RECOVERY_CODE_LEN)
            .map(|_| char::from(CROCKFORD[rng.gen_range(0..CROCKFORD.len())]))
            .collect();
        Self(SecretString::from(text))
    }

    /// The non-secret prefix the code is stored under.
    #[must_use]
    pub fn lookup(&self) -> &str {
        &self.0.expose_secret()[..RECOVERY_LOOKUP_LEN]
    }

    /// The whole normalised code: what is hashed and verified.
    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// The form shown to the user once: `xxxx-xxxx-xxxx-xxxx`.
    #[must_use]
    pub fn display(&self) -> String {
        let text = self.0.expose_secret();
        text.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// A second-factor code as a client sends it: a TOTP code or a recovery code.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum SecondFactorCode {
    Totp(TotpCode),
    Recovery(RecoveryCode),
}

crate::types::parse_from_string!(SecondFactorCode);

/// ASCII white space and hyphens, which a code may carry anywhere.
const CODE_FILLER: &str = r"[-\t\n\f\r ]*";

crate::types::schema!(
    TotpCode,
    crate::types::string_schema(
        "The 6-digit code of the authenticator app (spaces and hyphens allowed)",
        6,
        Some(64),
        &format!("^{CODE_FILLER}(?:[0-9]{CODE_FILLER}){{6}}$"),
    )
);
crate::types::schema!(
    SecondFactorCode,
    crate::types::string_schema(
        "The 6-digit code of the authenticator app, or a recovery code (16 of Crockford's base32, any case; spaces and hyphens allowed)",
        6,
        Some(64),
        &format!(
            "^{CODE_FILLER}(?:(?:[0-9]{CODE_FILLER}){{6}}|(?:[0-9A-TV-Za-tv-z]{CODE_FILLER}){{16}})$"
        ),
    )
);

impl SecondFactorCode {
    /// Accepts 6 digits (spaces allowed) or a recovery code (hyphens and spaces allowed, any
    /// case; `i`/`l` read as `1` and `o` as `0`, as Crockford's base32 prescribes).
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let bad = || {
            Rejection::new(
                "invalid_format",
                "must be the 6-digit code of your authenticator app or a recovery code",
            )
        };
        if raw.len() > 64 {
            return Err(bad());
        }
        let compact: String = raw
            .chars()
            .filter(|c| !c.is_ascii_whitespace() && *c != '-')
            .collect();
        if compact.len() == DIGITS && compact.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Self::Totp(TotpCode(SecretString::from(compact))));
        }
        let normalised: Option<String> = compact
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                let c = match c {
                    'i' | 'l' => '1',
                    'o' => '0',
                    other => other,
                };
                (c.is_ascii() && CROCKFORD.contains(&(c as u8))).then_some(c)
            })
            .collect();
        match normalised {
            Some(code) if code.len() == RECOVERY_CODE_LEN && code.is_ascii() => {
                Ok(Self::Recovery(RecoveryCode(SecretString::from(code))))
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// RFC 6238 Appendix B: the SHA-1 seed and the 8-digit values at each test time.
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(SecretBox::new(Box::new(RFC_SEED.to_vec()))).unwrap()
    }

    fn code(text: &str) -> TotpCode {
        match SecondFactorCode::parse(text).unwrap() {
            SecondFactorCode::Totp(c) => c,
            other => panic!("not a TOTP code: {other:?}"),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(
                generator(RFC_SEED, 8).generate(*time),
                *expected,
                "8 digits at {time}"
            );
            // Six digits are the same value modulo 10^6.
            let six = &expected[2..];
            let secret = rfc_secret();
            let now = at(i64::try_from(*time).unwrap());
            assert_eq!(
                secret.code_at_step(time_step(now)),
                six,
                "6 digits at {time}"
            );
            assert_eq!(secret.matching_step(&code(six), now), Some(time_step(now)));
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = TotpSecret::generate();
        let now = at(1_700_000_000);
        let step = time_step(now);
        for delta in [-1, 0, 1] {
            let c = code(&secret.code_at_step(step + delta));
            assert_eq!(secret.matching_step(&c, now), Some(step + delta));
        }
        for delta in [-3, -2, 2, 3] {
            let text = secret.code_at_step(step + delta);
            let collides = [-1, 0, 1]
                .iter()
                .any(|d| secret.code_at_step(step + d) == text);
            if !collides {
                assert_eq!(secret.matching_step(&code(&text), now), None);
            }
        }
    }

    #[test]
    fn steps_are_thirty_seconds() {
        assert_eq!(time_step(at(0)), 0);
        assert_eq!(time_step(at(29)), 0);
        assert_eq!(time_step(at(30)), 1);
        assert_eq!(time_step(at(59)), 1);
    }

    #[test]
    fn base32_and_otpauth_uri() {
        let secret = rfc_secret();
        assert_eq!(
            secret.base32().expose_secret(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let back = TotpSecret::from_base32("gezdgnbvgy3tqojq gezdgnbvgy3tqojq").unwrap();
        assert_eq!(back.expose_bytes(), RFC_SEED);
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert_eq!(
            secret.otpauth_uri("ali ce").expose_secret(),
            "otpauth://totp/Conclave:ali%20ce?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Conclave&algorithm=SHA1&digits=6&period=30"
        );
        assert!(format!("{secret:?}").contains("redacted"));
        assert_eq!(TotpSecret::generate().expose_bytes().len(), SECRET_LEN);
        assert!(TotpSecret::from_bytes(SecretBox::new(Box::new(vec![0; 15]))).is_err());
    }

    #[test]
    fn code_parsing() {
        assert!(matches!(
            SecondFactorCode::parse("123 456"),
            Ok(SecondFactorCode::Totp(_))
        ));
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            "abcd",
            "abcd-efgh-jkmn-pqr",
            "abcd-efgh-jkmn-pqrsu",
            "ünïcode-ünïcode-",
            "\u{161}bcd-efgh-jkmn-pqrs",
            "123456789012345678901234567890123456789012345678901234567890123456",
        ] {
            assert!(SecondFactorCode::parse(bad).is_err(), "{bad:?}");
        }
        let generated = RecoveryCode::generate();
        let shown = generated.display();
        assert_eq!(shown.len(), RECOVERY_CODE_LEN + 3);
        assert_eq!(shown.matches('-').count(), 3);
        match SecondFactorCode::parse(&shown.to_uppercase()).unwrap() {
            SecondFactorCode::Recovery(r) => {
                assert_eq!(
                    r.secret().expose_secret(),
                    generated.secret().expose_secret()
                );
                assert_eq!(r.lookup(), &shown[..4]);
            }
            other => panic!("not a recovery code: {other:?}"),
        }
        // Crockford's look-alikes read as digits.
        match SecondFactorCode::parse("IL0O-abcd-efgh-jkmn").unwrap() {
            SecondFactorCode::Recovery(r) => assert_eq!(r.lookup(), "1100"),
            other => panic!("not a recovery code: {other:?}"),
        }
        assert!(!format!("{generated:?}").contains(&shown[5..]));
    }
}
