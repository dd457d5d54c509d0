//! Turns `[upstream]` into connection settings: broker address, TLS files, and the
//! password from the config, a file or an environment variable. Runs once at start-up,
//! so an unreadable file or a missing variable stops the agent with a message naming it.
//! The password is held as a [`Secret`] from here on, which never prints.

use std::time::Duration;

use super::publisher::UpstreamOptions;
use super::render_topic_at;
use crate::config::{parse_broker, Config, Secret};
use crate::mqtt::tls::{client_config, TlsSetupError};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error("upstream.broker: {0}")]
    Broker(String),
    #[error("upstream TLS: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("upstream.password_file: cannot read {path}: {error}")]
    PasswordFile { path: String, error: String },
    #[error("upstream.password_env: the environment variable {0} is not set")]
    PasswordEnv(String),
}

/// The password, from whichever source the config names.
fn password(config: &Config) -> Result<Option<Secret>, UpstreamSetupError> {
    let u = &config.upstream;
    if let Some(p) = &u.password {
        return Ok(Some(p.clone()));
    }
    if let Some(path) = &u.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| UpstreamSetupError::PasswordFile {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        return Ok(Some(Secret(text.trim_end_matches(['\n', '\r']).to_string())));
    }
    if let Some(var) = &u.password_env {
        return std::env::var(var)
            .map(|v| Some(Secret(v)))
            .map_err(|_| UpstreamSetupError::PasswordEnv(var.clone()));
    }
    Ok(None)
}

/// Connection settings for the publisher.
pub fn options(config: &Config) -> Result<UpstreamOptions, UpstreamSetupError> {
    let u = &config.upstream;
    let broker = parse_broker(&u.broker).map_err(UpstreamSetupError::Broker)?;
    let tls = match (&u.ca_file, broker.tls) {
        (Some(ca), true) => {
            let client = u.client_cert.as_deref().zip(u.client_key.as_deref());
            Some(client_config(ca, client)?)
        }
        _ => None,
    };
    let site = u.site.as_deref();
    let agent = &config.agent.id;
    Ok(UpstreamOptions {
        host: broker.host,
        port: broker.port,
        client_id: config.upstream_client_id(),
        keep_alive: u.keep_alive.as_duration(),
        max_inflight: u.max_inflight,
        tls,
        username: u.username.clone(),
        password: password(config)?,
        status_topic: render_topic_at(&u.status_topic, site, agent, ""),
        heartbeat_topic: render_topic_at(&u.heartbeat_topic, site, agent, ""),
        heartbeat_interval: u.heartbeat_interval.as_duration().max(Duration::from_secs(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[agent]\nid = \"gw\"\n[upstream]\nbroker = \"mqtt://h:1\"\nsite = \"s1\"\nstatus_topic = \"forewarn/{{site}}/{{agent}}/status\"\n{extra}"
        );
        Config::parse(&text, std::path::Path::new("t")).unwrap()
    }

    #[test]
    fn password_from_env_and_file_and_topics() {
        std::env::set_var("FOREWARN_TEST_UPSTREAM_PW", "s3cret");
        let o = options(&config(
            "username = \"u\"\npassword_env = \"FOREWARN_TEST_UPSTREAM_PW\"",
        ))
        .unwrap();
        assert_eq!(o.password, Some(Secret("s3cret".into())));
        assert_eq!(o.status_topic, "forewarn/s1/gw/status");
        assert!(!format!("{o:?}").contains("s3cret"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let o = options(&config(&format!(
            "username = \"u\"\npassword_file = \"{}\"",
            file.display()
        )))
        .unwrap();
        assert_eq!(o.password, Some(Secret("from-file".into())));

        let err = options(&config(
            "username = \"u\"\npassword_env = \"FOREWARN_TEST_UNSET_VARIABLE\"",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("FOREWARN_TEST_UNSET_VARIABLE"));
    }
}
