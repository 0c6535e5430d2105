//! The layering itself: a TOML file, then `CONCLAVE_*` environment variables written into the
//! same table (`__` nests, `*_FILE` reads the value from a file), and the deserializers that
//! accept a value natively (TOML) or as a string (environment).

use super::ConfigError;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::path::Path;

/// Environment variables with this prefix are reserved for the test suite and not read here.
const TEST_PREFIX: &str = "CONCLAVE_TEST_";

/// The TOML file (if any) with `vars` written over it.
pub(super) fn layered_table(
    file: Option<&Path>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<toml::Table, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
        }
        None => toml::Table::new(),
    };
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("CONCLAVE_") else {
            continue;
        };
        if name.starts_with(TEST_PREFIX) {
            continue;
        }
        let (rest, value) = match rest.strip_suffix("_FILE") {
            Some(base) => {
                let text = std::fs::read_to_string(&value).map_err(|source| ConfigError::Read {
                    path: value.clone(),
                    source,
                })?;
                (base, text.trim_end_matches(['\n', '\r']).to_owned())
            }
            None => (rest, value),
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        insert(&mut table, &path, value, &name)?;
    }
    Ok(table)
}

fn insert(
    table: &mut toml::Table,
    path: &[String],
    value: String,
    env_name: &str,
) -> Result<(), ConfigError> {
    match path {
        [] => Ok(()),
        [leaf] => {
            table.insert(leaf.clone(), toml::Value::String(value));
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => insert(t, rest, value, env_name),
                _ => Err(ConfigError::Invalid(format!(
                    "{env_name}: `{head}` is not a section"
                ))),
            }
        }
    }
}

/// Deserializers that accept a value either natively (TOML) or as a string (environment).
pub(super) mod flex {
    use super::{Deserialize, Deserializer, IpNet};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Or<T> {
        Native(T),
        Text(String),
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Or::<bool>::deserialize(d)? {
            Or::Native(b) => Ok(b),
            Or::Text(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(serde::de::Error::custom(format!(
                    "expected true or false, got {s:?}"
                ))),
            },
        }
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Or::<u64>::deserialize(d)? {
            Or::Native(n) => Ok(n),
            Or::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("expected a number, got {s:?}"))),
        }
    }

    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Or::<Vec<String>>::deserialize(d)? {
            Or::Native(v) => v,
            Or::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    pub fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        match Or::<Vec<u16>>::deserialize(d)? {
            Or::Native(v) => Ok(v),
            Or::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse()
                        .map_err(|_| serde::de::Error::custom(format!("not a port: {p:?}")))
                })
                .collect(),
        }
    }

    pub fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        list(d)?
            .into_iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| serde::de::Error::custom(format!("not a CIDR: {s:?}")))
            })
            .collect()
    }
}
