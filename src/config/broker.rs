//! Broker connections as `[upstream]` and every `[[mqtt]]` input write them, checked by one
//! set of rules and resolved into one [`BrokerEndpoint`]: the parsed URL, the TLS files,
//! the credentials with the password's source, the client id and keep-alive. The MQTT
//! connection layer (`crate::mqtt`) turns an endpoint into a client; nothing after `check`
//! parses a broker URL again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::{at, k, readable, KeyPath};
use super::Dur;
use crate::base::secret::Secret;

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS, port 8883 by default.
    pub tls: bool,
}

/// Parses `mqtt://host[:port]` into host and port (`mqtts://` is accepted too).
pub fn parse_broker_url(url: &str) -> Result<(String, u16), String> {
    parse_broker(url).map(|b| (b.host, b.port))
}

/// Parses `mqtt://host[:port]` (port 1883 by default) or `mqtts://host[:port]` (TLS,
/// port 8883 by default).
pub fn parse_broker(url: &str) -> Result<BrokerAddr, String> {
    let (rest, tls) = if let Some(rest) = url.strip_prefix("mqtts://").or_else(|| url.strip_prefix("ssl://")) {
        (rest, true)
    } else {
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| format!("broker {url:?} must start with mqtt:// or mqtts://"))?;
        (rest, false)
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("broker {url:?}: port {p:?} is not a number 1-65535"))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("broker {url:?}: expected mqtt://host:port"));
    }
    Ok(BrokerAddr {
        host: host.to_string(),
        port,
        tls,
    })
}

/// The connection options `[upstream]` and `[[mqtt]]` share, borrowed from either. serde
/// cannot flatten them into one struct beside `deny_unknown_fields`, so the sections
/// declare the fields and lend them here, where they are checked and resolved once.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionFields<'a> {
    pub broker: &'a str,
    pub ca_file: Option<&'a Path>,
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
    pub username: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub password_file: Option<&'a Path>,
    pub password_env: Option<&'a str>,
    pub keep_alive: Dur,
}

/// Where a password comes from. Files and variables are read when the agent starts, by
/// the connection layer, so a changed file is picked up by a restart and the text never
/// sits in the resolved config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// No password: the user name alone is sent.
    None,
    /// Written in the config.
    Inline(Secret),
    /// The file's content without its trailing line break.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// A user name and where its password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: PasswordSource,
}

/// The PEM files of a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate authorities that sign the broker's certificate.
    pub ca_file: PathBuf,
    /// This gateway's certificate and key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// One broker connection, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// The URL as written, for log lines.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS with these files.
    pub tls: Option<TlsFiles>,
    pub credentials: Option<Credentials>,
    pub client_id: String,
    pub keep_alive: Duration,
}

/// Lends the connection fields of a section that declares them all under these names
/// (`[upstream]`, `[[mqtt]]`).
macro_rules! connection_fields {
    ($section:expr) => {
        $crate::config::ConnectionFields {
            broker: &$section.broker,
            ca_file: $section.ca_file.as_deref(),
            client_cert: $section.client_cert.as_deref(),
            client_key: $section.client_key.as_deref(),
            username: $section.username.as_deref(),
            password: $section.password.as_ref(),
            password_file: $section.password_file.as_deref(),
            password_env: $section.password_env.as_deref(),
            keep_alive: $section.keep_alive,
        }
    };
}

impl ConnectionFields<'_> {
    /// Every problem of these fields, under the section's key `base`. The same rules for
    /// the upstream broker and for every input.
    pub(super) fn check(&self, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
        let key = |name: &str| at(base, &[k(name)]);
        let tls = match parse_broker(self.broker) {
            Ok(b) => b.tls,
            Err(e) => {
                out.push((key("broker"), e));
                false
            }
        };
        if tls && self.ca_file.is_none() {
            out.push((
                key("ca_file"),
                "an mqtts:// broker needs ca_file (the CA that signed the broker's certificate; the system bundle, e.g. /etc/ssl/certs/ca-certificates.crt, for a public CA)".into(),
            ));
        }
        for (name, file) in [
            ("ca_file", self.ca_file),
            ("client_cert", self.client_cert),
            ("client_key", self.client_key),
        ] {
            let Some(path) = file else { continue };
            if !tls {
                out.push((key(name), "TLS options need an mqtts:// broker".into()));
            }
            readable(path, key(name), out);
        }
        match (self.client_cert, self.client_key) {
            (Some(_), None) => out.push((key("client_key"), "client_cert needs client_key".into())),
            (None, Some(_)) => out.push((key("client_cert"), "client_key needs client_cert".into())),
            _ => {}
        }
        self.check_password(&key, out);
    }

    /// Only the password rules, for a section that is not a broker (an InfluxDB 1.x
    /// destination authenticates with the same fields).
    pub(super) fn check_password_only(&self, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
        self.check_password(&|name: &str| at(base, &[k(name)]), out);
    }

    fn check_password(&self, key: &dyn Fn(&str) -> KeyPath, out: &mut Vec<(KeyPath, String)>) {
        let sources: Vec<&str> = [
            ("password", self.password.is_some()),
            ("password_file", self.password_file.is_some()),
            ("password_env", self.password_env.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();
        if sources.len() > 1 {
            out.push((key(sources[1]), format!("set only one of {}", sources.join(", "))));
        }
        if let Some(first) = sources.first() {
            if self.username.is_none_or(str::is_empty) {
                out.push((key(first), format!("a password needs {}", username_key(key))));
            }
        }
        if let Some(path) = self.password_file {
            readable(path, key("password_file"), out);
        }
        if let Some(var) = self.password_env {
            if var.is_empty() || var.contains(['=', '\0']) {
                out.push((
                    key("password_env"),
                    format!("{var:?} is not an environment variable name"),
                ));
            }
        }
    }

    /// The endpoint of valid fields, with `client_id`.
    pub(super) fn resolve(&self, client_id: String) -> Result<BrokerEndpoint, String> {
        let addr = parse_broker(self.broker)?;
        let tls = match (addr.tls, self.ca_file) {
            (true, Some(ca)) => Some(TlsFiles {
                ca_file: ca.to_path_buf(),
                client: self
                    .client_cert
                    .zip(self.client_key)
                    .map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
            }),
            (true, None) => return Err("an mqtts:// broker needs ca_file".into()),
            (false, _) => None,
        };
        let credentials = self.credentials();
        Ok(BrokerEndpoint {
            url: self.broker.to_string(),
            host: addr.host,
            port: addr.port,
            tls,
            credentials,
            client_id,
            keep_alive: self.keep_alive.as_duration(),
        })
    }
}

impl ConnectionFields<'_> {
    /// The user name and where its password comes from, without a broker: an InfluxDB
    /// 1.x destination authenticates with the same fields.
    pub(super) fn credentials(&self) -> Option<Credentials> {
        let password = match (self.password, self.password_file, self.password_env) {
            (Some(p), _, _) => PasswordSource::Inline(p.clone()),
            (None, Some(f), _) => PasswordSource::File(f.to_path_buf()),
            (None, None, Some(v)) => PasswordSource::Env(v.to_string()),
            (None, None, None) => PasswordSource::None,
        };
        self.username.filter(|u| !u.is_empty()).map(|u| Credentials {
            username: u.to_string(),
            password,
        })
    }
}

/// `upstream.username` or `mqtt[N].username`, as the key paths name them.
fn username_key(key: &dyn Fn(&str) -> KeyPath) -> String {
    super::keys::path_string(&key("username"))
}

#[cfg(test)]
mod tests {
    use super::parse_broker_url;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(
            parse_broker_url("mqtt://broker.local").unwrap(),
            ("broker.local".into(), 1883)
        );
        assert_eq!(parse_broker_url("mqtt://[::1]:1884").unwrap(), ("::1".into(), 1884));
        assert!(parse_broker_url("http://x:1").is_err());
        assert!(parse_broker_url("mqtt://x:notaport").is_err());
        assert!(parse_broker_url("mqtt://").is_err());
    }
}
