//! The single sign-on sections as an operator writes them (AUTH-10, AUTH-11): `[[host_jwt]]`
//! (arrays come from the TOML file only, never from the environment). `parse` turns them into
//! the typed settings `crate::sso` verifies with, reading secret files and keys once and naming
//! every problem.

use crate::sso::host_jwt::{HostJwt, HostKeys, JwtFamily};
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use std::path::PathBuf;

/// The shortest HS* secret accepted: 256 bits, as RFC 7518 §3.2 asks for HS256.
const MIN_SECRET_BYTES: usize = 32;
/// The longest lifetime a host may give its tokens (`max_lifetime_secs` cannot exceed it).
const MAX_LIFETIME_CAP_SECS: u64 = 3600;
/// The most clock skew a host may be allowed (`leeway_secs`).
const MAX_LEEWAY_SECS: u64 = 300;

/// `[[host_jwt]]`: a host app that signs short-lived JWTs naming its users (AUTH-11).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostJwtConfig {
    /// Names the host in links, counters and the audit log (`[a-z0-9_-]`, 1–64).
    pub id: String,
    /// The `iss` its tokens carry; each host has its own.
    pub issuer: String,
    /// The `aud` its tokens must name (this server).
    pub audience: String,
    /// Accepted `alg` values, all of the key's kind: `HS256|HS384|HS512` with `secret`,
    /// `RS*`, `PS*`, `ES256|ES384` or `EdDSA` with `public_key` or `jwks_url`.
    pub algorithms: Vec<String>,
    /// The shared HMAC secret (at least 32 bytes).
    pub secret: Option<SecretString>,
    /// A file holding the shared secret.
    pub secret_file: Option<PathBuf>,
    /// The host's public key, PEM.
    pub public_key: Option<String>,
    /// Where the host publishes its keys (fetched through the SSRF guard, cached).
    pub jwks_url: Option<String>,
    /// Each token's `jti` is accepted once (remembered in the database until it expires).
    #[serde(default)]
    pub single_use: bool,
    /// A `sub` linked to no account creates one.
    #[serde(default)]
    pub create_users: bool,
    /// The longest `exp - iat` accepted.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
    /// Clock skew allowed on `exp`, `iat` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_max_lifetime() -> u64 {
    300
}

fn default_leeway() -> u64 {
    30
}

/// Which family an `alg` name belongs to; `None` for names Conclave does not accept
/// (`none` among them).
fn algorithm(name: &str) -> Option<(Algorithm, JwtFamily)> {
    let alg = match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    };
    Some((alg, JwtFamily::of(alg)))
}

impl HostJwtConfig {
    /// The typed host, or every problem with it (prefixed with its id).
    fn parse(&self, production: bool) -> Result<HostJwt, Vec<String>> {
        let mut problems = Vec::new();
        let name = format!("host_jwt {:?}", self.id);
        let id_ok = (1..=64).contains(&self.id.len())
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !id_ok {
            problems.push(format!(
                "{name}: id must be 1-64 characters of a-z, 0-9, '_' and '-'"
            ));
        }
        if self.issuer.trim().is_empty() || self.audience.trim().is_empty() {
            problems.push(format!("{name}: issuer and audience must not be empty"));
        }
        let mut algorithms = Vec::new();
        for a in &self.algorithms {
            match algorithm(a) {
                Some(found) => algorithms.push(found),
                None => problems.push(format!(
                    "{name}: algorithm {a:?} is not accepted (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"
                )),
            }
        }
        if self.algorithms.is_empty() {
            problems.push(format!("{name}: algorithms must name at least one"));
        }
        let families: Vec<JwtFamily> = algorithms.iter().map(|(_, f)| *f).collect();
        let family = families.first().copied();
        if families.iter().any(|f| Some(*f) != family) {
            problems.push(format!(
                "{name}: algorithms must all be of one kind (HMAC, RSA, EC or EdDSA): one key cannot serve several"
            ));
        }
        let secret = match (&self.secret, &self.secret_file) {
            (Some(s), None) => Some(Ok(s.expose_secret().as_bytes().to_vec())),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map(|t| t.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
                    .map_err(|e| {
                        format!("{name}: cannot read secret_file {}: {e}", path.display())
                    }),
            ),
            (None, None) => None,
            (Some(_), Some(_)) => Some(Err(format!("{name}: set secret or secret_file, not both"))),
        };
        let sources = [
            secret.is_some(),
            self.public_key.is_some(),
            self.jwks_url.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            problems.push(format!(
                "{name}: exactly one of secret (or secret_file), public_key or jwks_url is needed"
            ));
        }
        let keys = match (secret, &self.public_key, &self.jwks_url) {
            (Some(Ok(bytes)), None, None) => {
                if bytes.len() < MIN_SECRET_BYTES || bytes.iter().all(u8::is_ascii_whitespace) {
                    problems.push(format!(
                        "{name}: the secret must have at least {MIN_SECRET_BYTES} bytes"
                    ));
                }
                if family.is_some_and(|f| f != JwtFamily::Hmac) {
                    problems.push(format!("{name}: a shared secret signs HS256/384/512 only"));
                }
                Some(HostKeys::Secret(SecretBox::new(Box::new(bytes))))
            }
            (Some(Err(e)), _, _) => {
                problems.push(e);
                None
            }
            (None, Some(pem), None) => {
                let key = match family {
                    Some(JwtFamily::Rsa) => DecodingKey::from_rsa_pem(pem.as_bytes()).ok(),
                    Some(JwtFamily::Ec) => DecodingKey::from_ec_pem(pem.as_bytes()).ok(),
                    Some(JwtFamily::Ed) => DecodingKey::from_ed_pem(pem.as_bytes()).ok(),
                    Some(JwtFamily::Hmac) => {
                        problems.push(format!(
                            "{name}: a public key cannot verify HS* tokens (that would be algorithm confusion): use RS*, PS*, ES* or EdDSA"
                        ));
                        None
                    }
                    None => None,
                };
                match key {
                    Some(k) => Some(HostKeys::PublicKey(k)),
                    None => {
                        if family.is_some_and(|f| f != JwtFamily::Hmac) {
                            problems.push(format!(
                                "{name}: public_key is not a PEM public key of the algorithms' kind"
                            ));
                        }
                        None
                    }
                }
            }
            (None, None, Some(url)) => {
                if family == Some(JwtFamily::Hmac) {
                    problems.push(format!(
                        "{name}: keys from a JWKS URL cannot verify HS* tokens: use a secret"
                    ));
                }
                match url::Url::parse(url) {
                    Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && !production) => {
                        Some(HostKeys::Jwks(u.to_string()))
                    }
                    Ok(_) => {
                        problems.push(format!(
                            "{name}: jwks_url must be https (plain http only outside production)"
                        ));
                        None
                    }
                    Err(_) => {
                        problems.push(format!("{name}: jwks_url is not a URL"));
                        None
                    }
                }
            }
            _ => None,
        };
        if self.max_lifetime_secs == 0 || self.max_lifetime_secs > MAX_LIFETIME_CAP_SECS {
            problems.push(format!(
                "{name}: max_lifetime_secs must be 1 to {MAX_LIFETIME_CAP_SECS} (host tokens are short-lived)"
            ));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            problems.push(format!(
                "{name}: leeway_secs must be at most {MAX_LEEWAY_SECS}"
            ));
        }
        match (keys, problems.is_empty()) {
            (Some(keys), true) => Ok(HostJwt {
                id: self.id.clone(),
                issuer: self.issuer.clone(),
                audience: self.audience.clone(),
                algorithms: algorithms.into_iter().map(|(a, _)| a).collect(),
                keys,
                single_use: self.single_use,
                create_users: self.create_users,
                max_lifetime_secs: i64::try_from(self.max_lifetime_secs).unwrap_or(i64::MAX),
                leeway_secs: i64::try_from(self.leeway_secs).unwrap_or(0),
            }),
            _ => Err(problems),
        }
    }
}

/// Every `[[host_jwt]]`, typed; ids and issuers unique.
pub(super) fn host_jwts(
    hosts: &[HostJwtConfig],
    production: bool,
) -> Result<Vec<HostJwt>, Vec<String>> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        if hosts[..i].iter().any(|o| o.id == h.id) {
            problems.push(format!("host_jwt {:?}: the id is used twice", h.id));
        }
        if hosts[..i].iter().any(|o| o.issuer == h.issuer) {
            problems.push(format!(
                "host_jwt {:?}: another host has the same issuer (the issuer picks the host)",
                h.id
            ));
        }
        match h.parse(production) {
            Ok(p) => parsed.push(p),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

/// `[oidc]`: OpenID Connect providers (AUTH-10).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSection {
    /// `[[oidc.providers]]`, shown on the sign-in page in this order.
    pub providers: Vec<OidcProviderConfig>,
}

/// Defaults for a well-known provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OidcPreset {
    #[default]
    Generic,
    /// Google: issuer `https://accounts.google.com`, name "Google".
    Google,
    /// Microsoft Entra ID: a tenant's issuer (`https://login.microsoftonline.com/<tenant>/v2.0`)
    /// must be given; name "Microsoft".
    Microsoft,
}

/// Whether an identity with no account yet may take over an existing one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkExisting {
    /// Never: an unknown identity gets a new account (when `create_users`) or is refused.
    #[default]
    None,
    /// The account with the same email, when the provider says it verified the email (never
    /// a server admin's).
    EmailVerified,
}

/// `roles = [{claim, value, org, role}]`: a sign-in whose ID token claim `claim` is `value`
/// (or a list holding it) joins `org` with `role` unless it is a member already.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMappingConfig {
    pub claim: String,
    pub value: String,
    pub org: uuid::Uuid,
    pub role: conclave_core::types::OrgRole,
}

/// `[[oidc.providers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// In the routes (`/auth/oidc/{id}/…`) and the audit log (`[a-z0-9_-]`, 1–64).
    pub id: String,
    /// Shown on the sign-in page ("Sign in with …"); default from the preset, else the id.
    pub name: Option<String>,
    #[serde(default)]
    pub preset: OidcPreset,
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    /// Default `["openid", "email", "profile"]`; `openid` is always asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub link_existing: LinkExisting,
    #[serde(default)]
    pub roles: Vec<RoleMappingConfig>,
    /// An identity linked to no account creates one (default: refused).
    #[serde(default)]
    pub create_users: bool,
    /// A plain-http issuer (tests); production refuses it.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// Every `[[oidc.providers]]`, typed; ids unique.
pub(super) fn oidc_providers(
    section: &OidcSection,
    production: bool,
) -> Result<Vec<crate::sso::oidc::OidcSettings>, Vec<String>> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for (i, p) in section.providers.iter().enumerate() {
        let name = format!("oidc provider {:?}", p.id);
        if section.providers[..i].iter().any(|o| o.id == p.id) {
            problems.push(format!("{name}: the id is used twice"));
        }
        let id_ok = (1..=64).contains(&p.id.len())
            && p.id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !id_ok {
            problems.push(format!(
                "{name}: id must be 1-64 characters of a-z, 0-9, '_' and '-'"
            ));
        }
        let issuer = match (p.preset, p.issuer.as_deref()) {
            (_, Some(i)) => Some(i.to_owned()),
            (OidcPreset::Google, None) => Some("https://accounts.google.com".to_owned()),
            (_, None) => {
                problems.push(format!(
                    "{name}: issuer is required (Microsoft: https://login.microsoftonline.com/<tenant>/v2.0)"
                ));
                None
            }
        };
        if p.preset == OidcPreset::Microsoft
            && issuer.as_deref().is_some_and(|i| {
                !i.starts_with("https://login.microsoftonline.com/")
                    || i.contains("/common/")
                    || i.contains("/organizations/")
                    || i.contains('{')
            })
        {
            problems.push(format!(
                "{name}: the Microsoft preset needs one tenant's issuer, https://login.microsoftonline.com/<tenant id>/v2.0"
            ));
        }
        let issuer_url = issuer.as_deref().and_then(|i| match url::Url::parse(i) {
            Ok(u) if u.scheme() == "https" => Some(i.to_owned()),
            Ok(u) if u.scheme() == "http" && p.allow_insecure_http => Some(i.to_owned()),
            _ => {
                problems.push(format!(
                    "{name}: issuer must be an https URL (plain http only with allow_insecure_http, for tests)"
                ));
                None
            }
        });
        if production && p.allow_insecure_http {
            problems.push(format!("{name}: production refuses allow_insecure_http"));
        }
        let secret = match (&p.client_secret, &p.client_secret_file) {
            (Some(s), None) => Some(s.clone()),
            (None, Some(path)) => secret_file(path, &name, "client_secret_file", &mut problems),
            (None, None) => None,
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "{name}: set client_secret or client_secret_file, not both"
                ));
                None
            }
        };
        if secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().trim().is_empty())
        {
            problems.push(format!("{name}: client_secret is set but empty"));
        }
        if p.client_id.trim().is_empty() {
            problems.push(format!("{name}: client_id must not be empty"));
        }
        for r in &p.roles {
            if r.role == conclave_core::types::OrgRole::Owner {
                problems.push(format!(
                    "{name}: a role mapping cannot make owners (ownership is transferred, never granted by a claim)"
                ));
            }
            if r.claim.trim().is_empty() {
                problems.push(format!("{name}: a role mapping needs a claim"));
            }
        }
        let mut scopes = if p.scopes.is_empty() {
            vec![
                "openid".to_owned(),
                "email".to_owned(),
                "profile".to_owned(),
            ]
        } else {
            p.scopes.clone()
        };
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        let shown = p.name.clone().unwrap_or_else(|| match p.preset {
            OidcPreset::Google => "Google".to_owned(),
            OidcPreset::Microsoft => "Microsoft".to_owned(),
            OidcPreset::Generic => p.id.clone(),
        });
        if let Some(issuer) = issuer_url {
            parsed.push(crate::sso::oidc::OidcSettings {
                id: p.id.clone(),
                name: shown,
                issuer,
                client_id: p.client_id.clone(),
                client_secret: secret,
                scopes,
                link_existing: p.link_existing == LinkExisting::EmailVerified,
                create_users: p.create_users,
                roles: p
                    .roles
                    .iter()
                    .map(|r| crate::sso::oidc::RoleMapping {
                        claim: r.claim.clone(),
                        value: r.value.clone(),
                        org: conclave_core::OrgId(r.org),
                        role: r.role,
                    })
                    .collect(),
            });
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

/// A secret read from a `*_file` setting (its trailing line break dropped); a file that cannot be
/// read is one problem naming the section and the setting.
pub(super) fn secret_file(
    path: &std::path::Path,
    section: &str,
    setting: &str,
    problems: &mut Vec<String>,
) -> Option<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(SecretString::from(
            t.trim_end_matches(['\n', '\r']).to_owned(),
        )),
        Err(e) => {
            problems.push(format!(
                "{section}: cannot read {setting} {}: {e}",
                path.display()
            ));
            None
        }
    }
}
