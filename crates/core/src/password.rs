//! Password hashing: Argon2id with OWASP parameters (19 MiB, 2 passes, 1 lane), a fresh salt
//! per hash, parameters in the PHC string (so a change of parameters triggers a rehash on the
//! next login). Hashing runs on the blocking pool behind a semaphore sized to the cores: when
//! every slot is busy a request waits briefly, then gets `Busy` (503).

use crate::error::ServiceError;
use crate::slots::Slots;
use crate::types::Rejection;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 1024;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// A password that passed the rules: 12–1024 characters, not a common password (nor one with
/// only digits or symbols appended), not one repeated character.
#[derive(serde::Deserialize)]
#[serde(try_from = "String")]
pub struct NewPassword(SecretString);

crate::types::parse_from_string!(NewPassword);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let len = raw.chars().count();
        if len < MIN_LEN {
            return Err(Rejection {
                code: "too_short",
                message: format!("must be at least {MIN_LEN} characters"),
            });
        }
        if len > MAX_LEN {
            return Err(Rejection {
                code: "too_long",
                message: format!("must be at most {MAX_LEN} characters"),
            });
        }
        if is_common(raw) {
            return Err(Rejection {
                code: "too_common",
                message: "is too common; choose another".into(),
            });
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

crate::types::schema!(
    NewPassword,
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(
            "12–1024 characters, not a common password (nor one with only digits or symbols appended), not one character repeated",
        ))
        .min_length(Some(MIN_LEN))
        .max_length(Some(MAX_LEN))
        // At least two different characters.
        .pattern(Some(r"^([\s\S])\1*(?!\1)[\s\S]"))
        .into()
);

fn is_common(raw: &str) -> bool {
    let lower = raw.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return true;
    }
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    if stem.chars().count() >= 4 && COMMON.contains(stem) {
        return true;
    }
    let mut chars = lower.chars();
    let first = chars.next();
    first.is_some_and(|f| chars.all(|c| c == f))
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_else(|_| unreachable!());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but hashed with other parameters: store a fresh hash.
    YesRehash,
}

/// The bounded pool that runs Argon2id.
#[derive(Clone)]
pub struct PasswordHasherPool {
    slots: Slots,
    /// Verified against for unknown users, so they cost the same time as known ones.
    dummy: Arc<String>,
}

impl PasswordHasherPool {
    #[must_use]
    pub fn new(slots: usize, wait: Duration) -> Self {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let dummy = argon2()
            .hash_password(b"conclave-dummy-password-for-unknown-users", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        Self {
            slots: Slots::new(slots, wait),
            dummy: Arc::new(dummy),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let permit = self.slots.take().await?;
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("hashing task failed: {e}")))?;
        Ok(out)
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &NewPassword) -> Result<String, ServiceError> {
        let secret = password.0.expose_secret().to_owned();
        self.run(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            argon2()
                .hash_password(secret.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| ServiceError::Internal(format!("hashing failed: {e}")))
    }

    /// Verifies `password` against `phc`; with `None` verifies against the dummy hash and
    /// answers `No`, taking the same time.
    pub async fn verify(
        &self,
        password: &str,
        phc: Option<String>,
    ) -> Result<Verified, ServiceError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.as_ref().clone());
        let password = password.to_owned();
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Verified::No;
            };
            if argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_err()
                || !known
            {
                return Verified::No;
            }
            let current = Params::try_from(&parsed).ok();
            let wanted = argon2().params().clone();
            let same = parsed.algorithm == Algorithm::Argon2id.ident()
                && current.is_some_and(|p| {
                    p.m_cost() == wanted.m_cost()
                        && p.t_cost() == wanted.t_cost()
                        && p.p_cost() == wanted.p_cost()
                });
            if same {
                Verified::Yes
            } else {
                Verified::YesRehash
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(NewPassword::parse("short").is_err());
        assert!(
            NewPassword::parse("password1234").is_err(),
            "common stem plus digits"
        );
        assert!(NewPassword::parse("qwerty123456").is_err());
        assert!(NewPassword::parse("aaaaaaaaaaaaaaa").is_err());
        assert!(NewPassword::parse(&"x".repeat(1025)).is_err());
        assert!(NewPassword::parse("correct horse battery staple").is_ok());
    }

    #[tokio::test]
    async fn hash_verify_and_rehash() {
        let pool = PasswordHasherPool::new(2, Duration::from_secs(5));
        let pw = NewPassword::parse("a long and unusual passphrase").unwrap();
        let phc = pool.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            pool.verify("a long and unusual passphrase", Some(phc.clone()))
                .await
                .unwrap(),
            Verified::Yes
        );
        assert_eq!(pool.verify("wrong", Some(phc)).await.unwrap(), Verified::No);
        assert_eq!(pool.verify("anything", None).await.unwrap(), Verified::No);
        // A hash with weaker parameters verifies but asks for a rehash.
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let old = weak
            .hash_password(b"another passphrase here", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            pool.verify("another passphrase here", Some(old))
                .await
                .unwrap(),
            Verified::YesRehash
        );
    }
}
