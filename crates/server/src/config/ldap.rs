//! `[ldap]` as an operator writes it (AUTH-10): one LDAP / Active Directory directory whose
//! users sign in with the ordinary `POST /auth/login`. `parse` turns it into the typed settings
//! `crate::sso::ldap` binds with, reading the password and CA files once and naming every
//! problem.

use crate::sso::ldap::{GroupRole, LdapSettings, Transport};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The shortest interval between two directory checks of the linked accounts.
const MIN_CHECK_INTERVAL_SECS: u64 = 10;

/// `[ldap]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host[:port]` (TLS from the first byte) or `ldap://host[:port]` with
    /// `starttls = true`; plain `ldap://` only with `allow_plain` (tests).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    #[serde(default)]
    pub starttls: bool,
    /// Let passwords cross the network unencrypted (tests only; production refuses it).
    #[serde(default)]
    pub allow_plain: bool,
    /// A PEM file of the CA certificates the directory's certificate must chain to, instead of
    /// the system's roots (a decided extension: a company CA or a test's own).
    pub ca_file: Option<PathBuf>,
    /// The service account that searches for users and groups.
    pub bind_dn: String,
    pub bind_password: Option<SecretString>,
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched (subtree).
    pub user_base: String,
    /// Finds the one entry of a username: `{username}` is replaced by the typed name escaped
    /// per RFC 4515, e.g. `(uid={username})`; disabled accounts are left out by the filter.
    pub user_filter: String,
    /// Where groups are searched (subtree); without it no roles are mapped.
    pub group_base: Option<String>,
    /// The group attribute that holds members' DNs (`member`, `uniqueMember`).
    #[serde(default = "default_member_attribute")]
    pub member_attribute: String,
    /// `[{group, org, role}]`: members of `group` (its DN, or its `cn`) get `role` in `org`.
    #[serde(default)]
    pub group_roles: Vec<GroupRoleConfig>,
    /// How often every linked account is looked up again (a decided extension; default 300).
    #[serde(default = "default_check_interval")]
    pub check_interval_secs: u64,
}

fn default_member_attribute() -> String {
    "member".to_owned()
}

fn default_check_interval() -> u64 {
    300
}

/// One `group_roles` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRoleConfig {
    pub group: String,
    pub org: uuid::Uuid,
    pub role: conclave_core::types::OrgRole,
}

impl LdapConfig {
    /// The typed directory, or every problem with it.
    pub(super) fn parse(&self, production: bool) -> Result<LdapSettings, Vec<String>> {
        let mut problems = Vec::new();
        let transport = match url::Url::parse(&self.url) {
            Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                problems.push("ldap: url needs a host".to_owned());
                None
            }
            Ok(u) if u.scheme() == "ldaps" => {
                if self.starttls {
                    problems.push(
                        "ldap: starttls is for ldap:// URLs (ldaps:// is TLS already)".to_owned(),
                    );
                }
                Some(Transport::Ldaps)
            }
            Ok(u) if u.scheme() == "ldap" && self.starttls => Some(Transport::StartTls),
            Ok(u) if u.scheme() == "ldap" && self.allow_plain => Some(Transport::Plain),
            Ok(u) if u.scheme() == "ldap" => {
                problems.push(
                    "ldap: a plain ldap:// url needs starttls = true (or allow_plain, for tests)"
                        .to_owned(),
                );
                None
            }
            _ => {
                problems.push("ldap: url must be an ldaps:// or ldap:// URL".to_owned());
                None
            }
        };
        if production && self.allow_plain {
            problems.push("ldap: production refuses allow_plain".to_owned());
        }
        let ca_pem = self.ca_file.as_ref().and_then(|path| {
            match std::fs::read(path) {
                Ok(pem) => return Some(pem),
                Err(e) => {
                    problems.push(format!("ldap: cannot read ca_file {}: {e}", path.display()))
                }
            }
            None
        });
        let tls = ca_pem.and_then(|pem| match crate::sso::ldap::tls_config(&pem) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("ldap: {e}"));
                None
            }
        });
        let password = match (&self.bind_password, &self.bind_password_file) {
            (Some(s), None) => Some(s.clone()),
            (None, Some(path)) => {
                super::sso::secret_file(path, "ldap", "bind_password_file", &mut problems)
            }
            (None, None) => {
                problems.push("ldap: bind_password or bind_password_file is required".to_owned());
                None
            }
            (Some(_), Some(_)) => {
                problems.push("ldap: set bind_password or bind_password_file, not both".to_owned());
                None
            }
        };
        if password
            .as_ref()
            .is_some_and(|p| p.expose_secret().trim().is_empty())
        {
            // An empty password is an unauthenticated bind, which succeeds without proving anything.
            problems.push("ldap: the bind password must not be empty".to_owned());
        }
        if self.bind_dn.trim().is_empty() {
            problems.push("ldap: bind_dn must not be empty".to_owned());
        }
        if self.user_base.trim().is_empty() {
            problems.push("ldap: user_base must not be empty".to_owned());
        }
        let filter = self.user_filter.trim();
        if !(filter.starts_with('(') && filter.ends_with(')') && filter.contains("{username}")) {
            problems.push(
                "ldap: user_filter must be a parenthesized filter naming {username}, e.g. (uid={username})"
                    .to_owned(),
            );
        }
        if self.member_attribute.trim().is_empty()
            || !self
                .member_attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
        {
            problems.push("ldap: member_attribute must be an attribute name".to_owned());
        }
        if !self.group_roles.is_empty() && self.group_base.is_none() {
            problems.push("ldap: group_roles need group_base".to_owned());
        }
        for r in &self.group_roles {
            if r.role == conclave_core::types::OrgRole::Owner {
                problems.push(
                    "ldap: a group role cannot make owners (ownership is transferred, never granted by a group)"
                        .to_owned(),
                );
            }
            if r.group.trim().is_empty() {
                problems.push("ldap: a group role needs a group".to_owned());
            }
        }
        if self.check_interval_secs < MIN_CHECK_INTERVAL_SECS {
            problems.push(format!(
                "ldap: check_interval_secs must be at least {MIN_CHECK_INTERVAL_SECS}"
            ));
        }
        match (transport, password, problems.is_empty()) {
            (Some(transport), Some(bind_password), true) => Ok(LdapSettings {
                url: self.url.clone(),
                transport,
                tls,
                bind_dn: self.bind_dn.clone(),
                bind_password,
                user_base: self.user_base.clone(),
                user_filter: filter.to_owned(),
                group_base: self.group_base.clone(),
                member_attribute: self.member_attribute.clone(),
                group_roles: self
                    .group_roles
                    .iter()
                    .map(|r| GroupRole {
                        group: r.group.trim().to_owned(),
                        org: conclave_core::OrgId(r.org),
                        role: r.role,
                    })
                    .collect(),
                check_interval: Duration::from_secs(self.check_interval_secs),
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(password: &str) -> LdapConfig {
        LdapConfig {
            url: "ldaps://directory.example".to_owned(),
            starttls: false,
            allow_plain: false,
            ca_file: None,
            bind_dn: "cn=conclave,dc=example".to_owned(),
            bind_password: Some(SecretString::from(password.to_owned())),
            bind_password_file: None,
            user_base: "ou=people,dc=example".to_owned(),
            user_filter: "(uid={username})".to_owned(),
            group_base: None,
            member_attribute: default_member_attribute(),
            group_roles: Vec::new(),
            check_interval_secs: default_check_interval(),
        }
    }

    /// An empty or blank bind password is an error, never an unauthenticated bind.
    #[test]
    fn a_blank_bind_password_is_refused() {
        for blank in ["", "   ", "\t\n"] {
            let Err(problems) = config(blank).parse(false) else {
                panic!("{blank:?} was taken");
            };
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("bind password must not be empty")),
                "{blank:?}: {problems:?}"
            );
        }
        assert!(config("s3cret service password").parse(true).is_ok());
    }
}
