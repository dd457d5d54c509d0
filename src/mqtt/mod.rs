//! The MQTT connection layer that every client of the agent shares: the upstream alert
//! publisher, the MQTT inputs and the telemetry forwarders. A resolved
//! [`BrokerEndpoint`] becomes a [`Connection`] once, at start-up: TLS files are read and
//! the password is fetched from its source then, so a bad file or a missing variable stops
//! the agent with a message naming it, the same way for every client. From then on the
//! connection only builds rumqttc options (address, keep-alive, credentials, TLS with the
//! `ring` provider), and each client adds what is its own (session, acknowledgements,
//! last will). The password is a [`Secret`] throughout; it leaves as text only into
//! rumqttc's CONNECT packet.
//!
//! Connection errors are sorted the same way for every client ([`Failure`]), so a refused
//! login or a failed handshake reads alike in the publisher's and the inputs' logs.

pub mod tls;

use rumqttc::{ConnectReturnCode, ConnectionError, MqttOptions, TlsConfiguration, Transport};

use crate::base::secret::Secret;
use crate::config::{BrokerEndpoint, PasswordSource};
use tls::TlsSetupError;

/// Why a connection cannot be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{section} TLS: {source}")]
    Tls {
        section: String,
        #[source]
        source: TlsSetupError,
    },
    #[error("{section}.password_file: cannot read {path}: {error}")]
    PasswordFile {
        section: String,
        path: String,
        error: String,
    },
    #[error("{section}.password_env: the environment variable {var} is not set")]
    PasswordEnv { section: String, var: String },
}

/// A broker connection ready to be opened as often as needed: the endpoint, its TLS
/// configuration and its password, all read once.
#[derive(Clone)]
pub struct Connection {
    endpoint: BrokerEndpoint,
    tls: Option<TlsConfiguration>,
    password: Option<Secret>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.endpoint.url)
            .field("client_id", &self.endpoint.client_id)
            .field("tls", &self.tls.is_some())
            .field("username", &self.endpoint.credentials.as_ref().map(|c| &c.username))
            .field("password", &self.password)
            .finish()
    }
}

impl Connection {
    /// Reads the endpoint's TLS files and password. `section` names the config section in
    /// messages (`upstream`, `mqtt[0]`).
    pub fn open(endpoint: BrokerEndpoint, section: &str) -> Result<Connection, SetupError> {
        let tls = match &endpoint.tls {
            Some(files) => {
                let client = files.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
                Some(
                    tls::client_config(&files.ca_file, client).map_err(|source| SetupError::Tls {
                        section: section.to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let password = match endpoint.credentials.as_ref() {
            Some(c) => read_password(&c.password, section)?,
            None => None,
        };
        Ok(Connection {
            endpoint,
            tls,
            password,
        })
    }

    /// The broker URL as written, for log lines.
    pub fn broker(&self) -> &str {
        &self.endpoint.url
    }

    pub fn client_id(&self) -> &str {
        &self.endpoint.client_id
    }

    /// The password that will be sent, if any (tests of the credential sources).
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// rumqttc options with address, client id, keep-alive, credentials and TLS; the
    /// caller sets what is its own.
    pub fn options(&self) -> MqttOptions {
        let e = &self.endpoint;
        let mut options = MqttOptions::new(&e.client_id, &e.host, e.port);
        options.set_keep_alive(e.keep_alive);
        if let Some(c) = &e.credentials {
            options.set_credentials(&c.username, self.password.as_ref().map_or("", Secret::expose));
        }
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(tls.clone()));
        }
        options
    }
}

/// The password of `source`, read now; `section` names the config section in messages.
/// Other clients that authenticate with the same fields (an InfluxDB destination) use it
/// too.
pub fn read_password(source: &PasswordSource, section: &str) -> Result<Option<Secret>, SetupError> {
    Ok(match source {
        PasswordSource::None => None,
        PasswordSource::Inline(s) => Some(s.clone()),
        PasswordSource::File(path) => Some(read_password_file(path).map_err(|error| SetupError::PasswordFile {
            section: section.to_string(),
            path: path.display().to_string(),
            error,
        })?),
        PasswordSource::Env(var) => Some(
            std::env::var(var)
                .map(Secret::new)
                .map_err(|_| SetupError::PasswordEnv {
                    section: section.to_string(),
                    var: var.clone(),
                })?,
        ),
    })
}

/// A password file's content without its trailing line break (an editor's or `echo`'s).
pub fn read_password_file(path: &std::path::Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// Why a connection ended, sorted so that each client logs it the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The broker refused the login: credentials or authorisation.
    Refused(String),
    /// The TLS handshake failed: certificates, names, keys.
    Tls(String),
    /// Anything else: broker down, network, protocol.
    Network(String),
}

impl Failure {
    /// Sorts a rumqttc error; `section` names the config section in the advice.
    pub fn from_error(e: &ConnectionError, section: &str) -> Failure {
        match e {
            ConnectionError::ConnectionRefused(
                code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
            ) => Failure::Refused(format!(
                "the broker refused the login ({code:?}): check {section}.username and the password"
            )),
            ConnectionError::ConnectionRefused(code) => {
                Failure::Refused(format!("the broker refused the connection ({code:?})"))
            }
            ConnectionError::Tls(t) => Failure::Tls(format!(
                "TLS handshake failed: {t}; check {section}.ca_file, client_cert, client_key and the broker's certificate"
            )),
            ConnectionError::Io(io) if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => Failure::Tls(
                format!("TLS failed: {io}; check {section}.client_cert and client_key and the broker's CA"),
            ),
            other => Failure::Network(other.to_string()),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Failure::Refused(s) | Failure::Tls(s) | Failure::Network(s) => s,
        }
    }

    /// A refused login or a failed handshake: a configuration problem, worth an error.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Failure::Refused(_) | Failure::Tls(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    fn endpoint(password: PasswordSource) -> BrokerEndpoint {
        BrokerEndpoint {
            url: "mqtt://h:1".into(),
            host: "h".into(),
            port: 1,
            tls: None,
            credentials: Some(Credentials {
                username: "u".into(),
                password,
            }),
            client_id: "c".into(),
            keep_alive: std::time::Duration::from_secs(30),
        }
    }

    #[test]
    fn passwords_come_from_the_config_a_file_or_the_environment() {
        let c = Connection::open(endpoint(PasswordSource::Inline(Secret::new("inline"))), "upstream").unwrap();
        assert_eq!(c.password().map(Secret::expose), Some("inline"));
        assert!(!format!("{c:?}").contains("inline"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\r\n").unwrap();
        let c = Connection::open(endpoint(PasswordSource::File(file)), "mqtt[0]").unwrap();
        assert_eq!(c.password().map(Secret::expose), Some("from-file"));

        std::env::set_var("FOREWARN_TEST_CONNECTION_PW", "from-env");
        let c = Connection::open(
            endpoint(PasswordSource::Env("FOREWARN_TEST_CONNECTION_PW".into())),
            "upstream",
        )
        .unwrap();
        assert_eq!(c.password().map(Secret::expose), Some("from-env"));
    }

    #[test]
    fn a_missing_source_names_the_section_and_the_key() {
        let e = Connection::open(
            endpoint(PasswordSource::Env("FOREWARN_TEST_UNSET_VARIABLE".into())),
            "mqtt[1]",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "mqtt[1].password_env: the environment variable FOREWARN_TEST_UNSET_VARIABLE is not set"
        );
        let e = Connection::open(endpoint(PasswordSource::File("/nonexistent/pw".into())), "upstream").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("upstream.password_file: cannot read /nonexistent/pw"),
            "{e}"
        );
    }
}
