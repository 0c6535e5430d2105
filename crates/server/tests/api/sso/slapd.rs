//! The LDAP tests' directory: a real OpenLDAP (Debian's `slapd`) started per test from a
//! temporary directory on free ports, serving `ldap://` (plain and StartTLS) and `ldaps://`
//! with a certificate signed by a CA made for the test, and the app and sign-in helpers the
//! tests in `ldap.rs` share.

use crate::bruteforce::login_from;
use crate::helpers::*;
use conclave_server::config::{LdapConfig, OnOff};
use ldap3::{Ldap, LdapConnAsync, Mod};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) const SUFFIX: &str = "dc=example,dc=org";
pub(super) const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
pub(super) const ROOT_PW: &str = "root secret";
pub(super) const SERVICE_DN: &str = "cn=service,dc=example,dc=org";
pub(super) const SERVICE_PW: &str = "service secret";
pub(super) const FILTER: &str = "(&(uid={username})(!(employeeType=disabled)))";
pub(super) const ALICE_PW: &str = "alice's directory password";
pub(super) const CHECK_SECS: u64 = 60;

pub(super) fn person(uid: &str, name: &str, password: &str, extra: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n\
         sn: {uid}\nmail: {uid}@example.org\nuserPassword: {password}\n{extra}\n"
    )
}

pub(super) fn people_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

pub(super) fn group_dn(cn: &str) -> String {
    format!("cn={cn},ou=groups,{SUFFIX}")
}

pub(super) fn directory_ldif() -> String {
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: service\nuserPassword: {SERVICE_PW}\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    ldif += &person("alice", "Alice Liddell", ALICE_PW, "displayName: Alice L.");
    ldif += "\n";
    ldif += &person("bob", "Bob", "bob's password", "");
    ldif += "\n";
    ldif += &person(
        "carol",
        "Carol",
        "carol's password",
        "employeeType: disabled",
    );
    ldif += "\n";
    ldif += &person("dave", "Dave", "dave's password", "");
    ldif += "\n";
    ldif += &person("admin", "Admin", "admin's password", "");
    ldif += "\n";
    ldif += &person("localuser", "Local", "the directory's password", "");
    ldif += &format!(
        "\ndn: {}\nobjectClass: groupOfNames\ncn: chat-admins\nmember: {}\n\n\
         dn: {}\nobjectClass: groupOfNames\ncn: staff\nmember: {}\nmember: {}\n",
        group_dn("chat-admins"),
        people_dn("alice"),
        group_dn("staff"),
        people_dn("alice"),
        people_dn("bob"),
    );
    ldif
}

/// A running slapd, killed (and its directory removed) when dropped.
pub(super) struct Slapd {
    pub(super) child: Option<tokio::process::Child>,
    dir: PathBuf,
    port: u16,
    tls_port: u16,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        drop(self.child.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two distinct free ports: both listeners are held while the second is chosen.
fn two_free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (bind(), bind());
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

pub(super) fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Slapd {
    /// Starts one; `None` (after saying SKIPPED) when slapd is not installed, outside CI.
    pub(super) async fn start() -> Option<Slapd> {
        if !Path::new("/usr/sbin/slapd").exists() || !Path::new("/usr/sbin/slapadd").exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "slapd is required under CI=true (apt-get install slapd ldap-utils)"
            );
            eprintln!(
                "SKIPPED an LDAP test: slapd is not installed (apt-get install slapd ldap-utils)"
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!("conclave-slapd-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        // A CA, and a server certificate for 127.0.0.1 it signs.
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=conclave test CA",
        ]);
        run(&dir, "openssl", &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&dir, "openssl", &csr);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(
            &dir,
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let d = dir.display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             TLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n\
             database mdb\nmaxsize 10485760\nsuffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\nrootpw \"{ROOT_PW}\"\ndirectory {d}/db\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by dn.exact=\"{SERVICE_DN}\" read by * none\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        std::fs::write(dir.join("init.ldif"), directory_ldif()).unwrap();
        run(
            &dir,
            "/usr/sbin/slapadd",
            &["-f", "slapd.conf", "-l", "init.ldif"],
        );
        // A port another process takes between our look and slapd's bind makes slapd exit: it
        // is started again on other ports. Readiness is a bind as the directory's root, so a
        // stranger listening on the port is never taken for it.
        let mut slapd = Slapd {
            child: None,
            dir,
            port: 0,
            tls_port: 0,
        };
        for _attempt in 0..3 {
            if slapd.launch().await {
                return Some(slapd);
            }
        }
        let log = std::fs::read_to_string(slapd.dir.join("slapd.log")).unwrap_or_default();
        panic!("slapd did not start: {log}");
    }

    /// Starts slapd on two fresh ports and waits (up to 30 s) until it answers a bind: false
    /// when it exited (a port was taken) or never answered.
    async fn launch(&mut self) -> bool {
        drop(self.child.take());
        (self.port, self.tls_port) = two_free_ports();
        let (port, tls_port) = (self.port, self.tls_port);
        let log = std::fs::File::create(self.dir.join("slapd.log")).unwrap();
        let child = tokio::process::Command::new("/usr/sbin/slapd")
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
            ))
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            // In the foreground, so it ends with the test; errors to the log.
            .args(["-d", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("slapd starts");
        self.child = Some(child);
        for _ in 0..300 {
            let exited = (self.child.as_mut()).map(|c| c.try_wait().ok().flatten().is_some());
            if exited != Some(false) {
                return false;
            }
            let tls = tokio::net::TcpStream::connect(("127.0.0.1", tls_port)).await;
            if tls.is_ok() && self.answers().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Whether the directory's root can bind on the plain port.
    async fn answers(&self) -> bool {
        let url = self.url("plain");
        let connecting = LdapConnAsync::new(&url);
        let Ok(Ok((conn, mut ldap))) =
            tokio::time::timeout(Duration::from_secs(5), connecting).await
        else {
            return false;
        };
        ldap3::drive!(conn);
        let bound =
            tokio::time::timeout(Duration::from_secs(5), ldap.simple_bind(ROOT_DN, ROOT_PW)).await;
        let ok = matches!(bound, Ok(Ok(r)) if r.rc == 0);
        let _ = ldap.unbind().await;
        ok
    }

    pub(super) fn url(&self, transport: &str) -> String {
        match transport {
            "ldaps" => format!("ldaps://127.0.0.1:{}", self.tls_port),
            _ => format!("ldap://127.0.0.1:{}", self.port),
        }
    }

    /// `[ldap]` for `transport` (`starttls`, `ldaps` or `plain`), with `extra` keys.
    pub(super) fn config(&self, transport: &str, extra: Value) -> LdapConfig {
        let mut c = json!({
            "url": self.url(transport),
            "starttls": transport == "starttls",
            "allow_plain": transport == "plain",
            "ca_file": self.dir.join("ca.pem"),
            "bind_dn": SERVICE_DN,
            "bind_password": SERVICE_PW,
            "user_base": format!("ou=people,{SUFFIX}"),
            "user_filter": FILTER,
            "group_base": format!("ou=groups,{SUFFIX}"),
            "member_attribute": "member",
            "check_interval_secs": CHECK_SECS,
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    /// The directory's administrator, to change entries under a running app.
    pub(super) async fn admin(&self) -> Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.url("plain")).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(ROOT_DN, ROOT_PW)
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap
    }

    pub(super) async fn modify(&self, dn: &str, change: Mod<&str>) {
        let mut ldap = self.admin().await;
        ldap.modify(dn, vec![change])
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap.unbind().await.unwrap();
    }
}

pub(super) fn values(v: &str) -> HashSet<&str> {
    HashSet::from([v])
}

/// An app using `ldap`, on the database of `first` (so orgs made there can be mapped); behind
/// a trusted proxy (the loopback peer) so tests name the client address, request rate limits
/// off so only the sign-in back-off answers.
pub(super) async fn ldap_app(first: &TestApp, ldap: LdapConfig) -> TestApp {
    spawn_app_with(first.backend, |c| {
        c.ldap = Some(ldap);
        c.rate_limits = OnOff::Off;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.data_dir = first.data_dir.clone();
        c.database_url = first.database_url.clone();
    })
    .await
    .expect("the app starts")
}

/// Signs `username` in from its own address: (user id, token).
pub(super) async fn sign_in(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let res = login_from(app, "192.0.2.1", username, password)
        .await
        .expect(200);
    (
        res.body["user"]["id"].as_str().unwrap().to_owned(),
        res.body["token"].as_str().unwrap().to_owned(),
    )
}

pub(super) async fn me(app: &TestApp, token: &str) -> u16 {
    app.get("/api/v1/users/@me", token).await.status.as_u16()
}

pub(super) async fn identities(app: &TestApp, user: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/admin/users/{user}/identities"),
        ADMIN_TOKEN,
    )
    .await
    .expect(200)
    .items()
}

/// Runs one directory check (the job ticks with the app's clock).
pub(super) async fn check(app: &TestApp) {
    app.clock
        .advance(chrono::Duration::seconds(CHECK_SECS as i64));
    app.clock.settled().await;
}
