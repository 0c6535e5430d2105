//! LDAP / Active Directory sign-in (AUTH-10), with the `ldap3` client. A sign-in:
//!
//! 1. refuses an empty password before anything is sent (a simple bind with one is an
//!    "unauthenticated bind", which directories answer with success);
//! 2. binds as the service account (`bind_dn`) over LDAPS or StartTLS (plain only when
//!    `allow_plain`, never in production) and searches `user_base` with `user_filter`, the
//!    username (spelled as the directory compares names, by `login_or_directory`) escaped per
//!    RFC 4515 (`ldap3::ldap_escape`: `*`, `(`, `)`, `\` and NUL), for exactly one entry —
//!    none, several, or a referral is a refusal; a `user_base` that does not exist is a
//!    directory that cannot be asked (503), not a refusal;
//! 3. binds as that entry's DN with the password;
//! 4. finds its groups (`group_base` entries whose `member_attribute` holds the DN, the DN
//!    escaped too) and maps them to org roles (`group_roles`);
//! 5. names the identity by the entry's stable id — `entryUUID` (OpenLDAP, RFC 4530), else
//!    `objectGUID` (Active Directory, as a UUID), else the DN — so a rename keeps the account.
//!
//! Every refusal is the same 401 `invalid_credentials` as a wrong local password (no user
//! enumeration); a directory that cannot be reached or refuses the service account is 503
//! `directory_unavailable`, never a fallback. The periodic [`Directory::check`] looks every
//! linked account up again by its stable id with the service account, through the same
//! `user_filter` (`{username}` standing for any value), so an entry removed, or left out by the
//! filter because it was disabled, loses its sessions, API keys and OAuth grants. Only the
//! lookup of an entry by its DN takes "no such object" for "gone": under `user_base` it says
//! the base itself is missing (an OU renamed), and the check then decides nothing.

use conclave_core::error::ServiceError;
use conclave_core::service::{
    DirectoryRevoked, DirectoryVerdict, ExternalIdentity, Services, SsoFailure, SsoRules,
    DIRECTORY_REFUSED as REFUSED,
};
use conclave_core::store::{IdentityKey, IdentityKind, LinkedIdentity};
use conclave_core::types::OrgRole;
use conclave_core::OrgId;
use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole sign-in's conversation with the directory may take.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest username sent to the directory.
const MAX_USERNAME_CHARS: usize = 256;
/// The attributes read from a user entry.
const USER_ATTRS: [&str; 7] = [
    "entryUUID",
    "objectGUID",
    "uid",
    "sAMAccountName",
    "displayName",
    "cn",
    "mail",
];
/// LDAP result codes.
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before anything else is sent.
    StartTls,
    /// `ldap://` in the clear (`allow_plain`, tests; production refuses it).
    Plain,
}

/// Members of `group` (its DN or its `cn`, compared case-insensitively) get `role` in `org`.
#[derive(Debug, Clone)]
pub struct GroupRole {
    pub group: String,
    pub org: OrgId,
    pub role: OrgRole,
}

/// `[ldap]`, checked.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// Also the provider of the linked identities.
    pub url: String,
    pub transport: Transport,
    /// Trusting `ca_file`'s certificates; `None`: the system's roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub bind_dn: String,
    pub bind_password: SecretString,
    pub user_base: String,
    pub user_filter: String,
    pub group_base: Option<String>,
    pub member_attribute: String,
    pub group_roles: Vec<GroupRole>,
    pub check_interval: Duration,
}

/// A TLS client configuration trusting only the CA certificates in `ca_pem`.
pub fn tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|_| "ca_file is not a PEM file of certificates".to_owned())?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_file holds a certificate that cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err("ca_file holds no certificate".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// 503: the directory could not be asked.
fn unavailable() -> SsoFailure {
    SsoFailure::Unavailable(ServiceError::Unavailable {
        code: "directory_unavailable",
        message: "the directory cannot be reached; retry shortly",
    })
}

/// The directory could not be asked (the reason is logged, never answered).
#[derive(Debug)]
struct Unreachable;

impl From<ldap3::LdapError> for Unreachable {
    fn from(e: ldap3::LdapError) -> Self {
        tracing::warn!(error = %e, "the LDAP directory could not be asked");
        Self
    }
}

/// Where a user search looks, which says what "no such object" (32) means.
#[derive(Debug, Clone, Copy)]
enum Within<'a> {
    /// The subtree under `user_base`: 32 is the base itself missing, so the directory cannot
    /// be asked about anyone.
    UserBase,
    /// The entry at this DN itself: 32 is the entry gone.
    Entry(&'a str),
}

/// The configured directory.
#[derive(Debug)]
pub struct Directory {
    settings: LdapSettings,
}

impl Directory {
    #[must_use]
    pub fn new(settings: LdapSettings) -> Self {
        Self { settings }
    }

    /// How often linked accounts are looked up again.
    #[must_use]
    pub fn check_interval(&self) -> Duration {
        self.settings.check_interval
    }

    /// Checks `username` and `password` against the directory: who they are and the roles
    /// their groups grant.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(ExternalIdentity, SsoRules), SsoFailure> {
        if password.is_empty()
            || username.is_empty()
            || username.chars().count() > MAX_USERNAME_CHARS
        {
            return Err(REFUSED.into());
        }
        match tokio::time::timeout(SIGN_IN_TIMEOUT, self.sign_in(username, password)).await {
            Ok(Ok(Some(found))) => Ok(found),
            Ok(Ok(None)) => Err(REFUSED.into()),
            Ok(Err(Unreachable)) => Err(unavailable()),
            Err(_) => {
                tracing::warn!("the LDAP directory did not answer in time");
                Err(unavailable())
            }
        }
    }

    async fn sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<(ExternalIdentity, SsoRules)>, Unreachable> {
        let mut ldap = self.service_connection().await?;
        let filter = self
            .settings
            .user_filter
            .replace("{username}", &ldap_escape(username));
        let Some(entry) = self.one_entry(&mut ldap, Within::UserBase, &filter).await? else {
            let _ = ldap.unbind().await;
            return Ok(None);
        };
        let bound = ldap.simple_bind(&entry.dn, password).await?;
        if bound.rc != RC_SUCCESS {
            let _ = ldap.unbind().await;
            return Ok(None);
        }
        // Back to the service account, which may read groups the user may not.
        self.service_bind(&mut ldap).await?;
        let rules = self.rules(&mut ldap, &entry.dn).await?;
        let _ = ldap.unbind().await;
        let wished = first(&entry, "uid")
            .or_else(|| first(&entry, "sAMAccountName"))
            .unwrap_or_else(|| username.to_owned());
        let identity = ExternalIdentity {
            key: IdentityKey {
                kind: IdentityKind::Ldap,
                provider: self.settings.url.clone(),
                subject: stable_id(&entry),
            },
            username: Some(wished),
            display_name: first(&entry, "displayName").or_else(|| first(&entry, "cn")),
            email: first(&entry, "mail"),
            // A directory's mail attribute links nothing: accounts are found by the entry's id.
            email_verified: false,
            single_use: None,
        };
        Ok(Some((identity, rules)))
    }

    /// A connection bound as the service account.
    async fn service_connection(&self) -> Result<Ldap, Unreachable> {
        let mut conn = LdapConnSettings::new()
            .set_conn_timeout(CONNECT_TIMEOUT)
            .set_starttls(self.settings.transport == Transport::StartTls);
        if let Some(tls) = &self.settings.tls {
            conn = conn.set_config(tls.clone());
        }
        let (driver, mut ldap) = LdapConnAsync::with_settings(conn, &self.settings.url).await?;
        tokio::spawn(async move {
            if let Err(e) = driver.drive().await {
                tracing::debug!(error = %e, "an LDAP connection ended with an error");
            }
        });
        self.service_bind(&mut ldap).await?;
        Ok(ldap)
    }

    async fn service_bind(&self, ldap: &mut Ldap) -> Result<(), Unreachable> {
        let bound = ldap
            .simple_bind(
                &self.settings.bind_dn,
                self.settings.bind_password.expose_secret(),
            )
            .await?;
        if bound.rc != RC_SUCCESS {
            tracing::error!(
                rc = bound.rc,
                "the LDAP directory refused the service account (bind_dn, bind_password)"
            );
            return Err(Unreachable);
        }
        Ok(())
    }

    /// The one entry `filter` finds `within`; `None` for none or several (or, looking up an
    /// entry by its DN, no such entry).
    async fn one_entry(
        &self,
        ldap: &mut Ldap,
        within: Within<'_>,
        filter: &str,
    ) -> Result<Option<SearchEntry>, Unreachable> {
        let (base, scope) = match within {
            Within::UserBase => (self.settings.user_base.as_str(), Scope::Subtree),
            Within::Entry(dn) => (dn, Scope::Base),
        };
        let found = ldap
            .with_search_options(ldap3::SearchOptions::new().sizelimit(2))
            .search(base, scope, filter, USER_ATTRS.to_vec())
            .await?;
        match (found.1.rc, within) {
            (RC_SUCCESS, _) => {}
            (RC_SIZE_LIMIT, _) | (RC_NO_SUCH_OBJECT, Within::Entry(_)) => return Ok(None),
            // Every user is under `user_base`: without it the directory says nothing about
            // any of them, so nothing may be taken for gone.
            (RC_NO_SUCH_OBJECT, Within::UserBase) => {
                tracing::error!(
                    "the LDAP directory has no entry at user_base (renamed or removed?): \
                     nothing can be looked up under it"
                );
                return Err(Unreachable);
            }
            (rc, _) => {
                tracing::warn!(rc, "an LDAP user search failed");
                return Err(Unreachable);
            }
        }
        let mut entries: Vec<SearchEntry> = found
            .0
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect();
        Ok(if entries.len() == 1 {
            entries.pop()
        } else {
            None
        })
    }

    /// The roles the groups of `dn` grant, and the orgs the directory governs.
    async fn rules(&self, ldap: &mut Ldap, dn: &str) -> Result<SsoRules, Unreachable> {
        let roles = &self.settings.group_roles;
        let mut rules = SsoRules {
            create_users: true,
            link_by_verified_email: false,
            grants: Vec::new(),
            managed_orgs: roles.iter().map(|r| r.org).collect(),
        };
        let Some(base) = self
            .settings
            .group_base
            .as_deref()
            .filter(|_| !roles.is_empty())
        else {
            return Ok(rules);
        };
        let filter = format!("({}={})", self.settings.member_attribute, ldap_escape(dn));
        let found = ldap
            .search(base, Scope::Subtree, &filter, vec!["cn"])
            .await?;
        if found.1.rc != RC_SUCCESS {
            tracing::warn!(rc = found.1.rc, "an LDAP group search failed");
            return Err(Unreachable);
        }
        for group in found
            .0
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
        {
            let cns = group.attrs.get("cn").cloned().unwrap_or_default();
            for r in roles {
                let named = same_dn(&r.group, &group.dn)
                    || cns.iter().any(|cn| cn.eq_ignore_ascii_case(&r.group));
                if named {
                    rules.grants.push((r.org, r.role));
                }
            }
        }
        Ok(rules)
    }

    /// Looks every account linked to this directory up again: one no longer found (removed, or
    /// left out by `user_filter` because it was disabled) loses its sessions, API keys and
    /// OAuth grants; one found gets
    /// the org roles of its groups now. Nothing is revoked when the directory cannot be asked.
    pub async fn check(&self, services: &Services) -> Result<CheckReport, ServiceError> {
        let accounts = services.directory_accounts(&self.settings.url).await?;
        let mut report = CheckReport::default();
        if accounts.is_empty() {
            return Ok(report);
        }
        let Ok(mut ldap) = self.service_connection().await else {
            report.unreachable = true;
            return Ok(report);
        };
        for account in &accounts {
            let verdict = match self.look_up(&mut ldap, account).await {
                Ok(Some(entry)) => match self.rules(&mut ldap, &entry.dn).await {
                    Ok(rules) => DirectoryVerdict::Present(rules),
                    Err(Unreachable) => {
                        report.unreachable = true;
                        break;
                    }
                },
                Ok(None) => DirectoryVerdict::Gone,
                Err(Unreachable) => {
                    report.unreachable = true;
                    break;
                }
            };
            report.checked += 1;
            if matches!(verdict, DirectoryVerdict::Gone) {
                report.gone += 1;
            }
            let revoked = services.directory_checked(account, verdict).await?;
            report.revoked.sessions += revoked.sessions;
            report.revoked.api_keys += revoked.api_keys;
            report.revoked.oauth_grants += revoked.oauth_grants;
        }
        let _ = ldap.unbind().await;
        Ok(report)
    }

    /// The entry of a linked account, by its stable id, if `user_filter` still finds it.
    async fn look_up(
        &self,
        ldap: &mut Ldap,
        account: &LinkedIdentity,
    ) -> Result<Option<SearchEntry>, Unreachable> {
        let any = self.settings.user_filter.replace("{username}", "*");
        match uuid::Uuid::parse_str(&account.subject) {
            Ok(id) => {
                let guid: String = id
                    .to_bytes_le()
                    .iter()
                    .map(|b| format!("\\{b:02x}"))
                    .collect();
                let filter = format!(
                    "(&(|(entryUUID={})(objectGUID={guid})){any})",
                    id.hyphenated()
                );
                self.one_entry(ldap, Within::UserBase, &filter).await
            }
            Err(_) => {
                self.one_entry(ldap, Within::Entry(&account.subject), &any)
                    .await
            }
        }
    }
}

/// What one check did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    pub checked: usize,
    pub gone: usize,
    /// What the accounts no longer let in lost, summed.
    pub revoked: DirectoryRevoked,
    /// The directory could not be asked (about some accounts): nothing was decided for them.
    pub unreachable: bool,
}

/// The first value of `attr` (named case-insensitively).
fn first(entry: &SearchEntry, attr: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .filter(|v| !v.trim().is_empty())
        .cloned()
}

/// The entry's stable id: `entryUUID`, else `objectGUID` as a UUID, else the DN.
fn stable_id(entry: &SearchEntry) -> String {
    if let Some(id) = first(entry, "entryUUID").and_then(|v| uuid::Uuid::parse_str(&v).ok()) {
        return id.hyphenated().to_string();
    }
    let guid = entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectGUID"))
        .and_then(|(_, v)| v.first().cloned())
        .or_else(|| first(entry, "objectGUID").map(String::into_bytes));
    if let Some(bytes) = guid.and_then(|b| <[u8; 16]>::try_from(b).ok()) {
        return uuid::Uuid::from_bytes_le(bytes).hyphenated().to_string();
    }
    entry.dn.clone()
}

/// Whether two DNs are the same, ignoring case and spaces around separators.
fn same_dn(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split(',')
            .map(|rdn| {
                rdn.split('=')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("=")
                    .to_lowercase()
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attrs: &[(&str, &str)], bin: &[(&str, Vec<u8>)]) -> SearchEntry {
        SearchEntry {
            dn: "uid=alice,ou=people,dc=example,dc=org".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            bin_attrs: bin
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![v.clone()]))
                .collect(),
        }
    }

    #[test]
    fn the_stable_id_prefers_entry_uuid_then_object_guid_then_the_dn() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(stable_id(&entry(&[("entryUUID", uuid)], &[])), uuid);
        // AD's objectGUID is the GUID's bytes, the first three fields little-endian.
        let guid = uuid::Uuid::parse_str(uuid).unwrap().to_bytes_le().to_vec();
        assert_eq!(stable_id(&entry(&[], &[("objectGUID", guid)])), uuid);
        assert_eq!(
            stable_id(&entry(&[("entryUUID", "not a uuid")], &[])),
            "uid=alice,ou=people,dc=example,dc=org"
        );
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert!(same_dn(
            "cn=Chat Admins, ou=Groups,dc=example,dc=org",
            "CN=chat admins,ou=groups,DC=example,DC=org"
        ));
        assert!(!same_dn("cn=a,dc=x", "cn=b,dc=x"));
    }

    #[test]
    fn usernames_are_escaped_per_rfc_4515() {
        for (typed, sent) in [
            ("*)(uid=*", "\\2a\\29\\28uid=\\2a"),
            ("admin)(|(", "admin\\29\\28|\\28"),
            ("\\", "\\5c"),
            ("a\0b", "a\\00b"),
        ] {
            assert_eq!(ldap_escape(typed), sent);
        }
    }
}
