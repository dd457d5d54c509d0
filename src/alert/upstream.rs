//! The upstream connection, set up once at start-up: the resolved `[upstream]` becomes the
//! publisher's options through the shared MQTT connection layer, which reads the TLS
//! files and the password then, so an unreadable file or a missing variable stops the
//! agent with a message naming it.

use std::time::Duration;

use super::publisher::UpstreamOptions;
use crate::config::UpstreamSettings;
use crate::mqtt::{Connection, SetupError};

/// Connection settings for the publisher.
pub fn options(settings: &UpstreamSettings) -> Result<UpstreamOptions, SetupError> {
    Ok(UpstreamOptions {
        connection: Connection::open(settings.endpoint.clone(), "upstream")?,
        max_inflight: settings.max_inflight,
        status_topic: settings.status_topic.clone(),
        heartbeat_topic: settings.heartbeat_topic.clone(),
        heartbeat_interval: settings.heartbeat_interval.max(Duration::from_secs(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::secret::Secret;
    use crate::config::Config;

    fn settings(extra: &str) -> UpstreamSettings {
        let text = format!(
            "[agent]\nid = \"gw\"\n[upstream]\nbroker = \"mqtt://h:1\"\nsite = \"s1\"\nstatus_topic = \"forewarn/{{site}}/{{agent}}/status\"\n{extra}"
        );
        Config::parse(&text, std::path::Path::new("t"))
            .unwrap()
            .upstream_settings()
            .unwrap()
    }

    #[test]
    fn password_from_env_and_file_and_topics() {
        std::env::set_var("FOREWARN_TEST_UPSTREAM_PW", "s3cret");
        let o = options(&settings(
            "username = \"u\"\npassword_env = \"FOREWARN_TEST_UPSTREAM_PW\"",
        ))
        .unwrap();
        assert_eq!(o.connection.password().map(Secret::expose), Some("s3cret"));
        assert_eq!(o.status_topic, "forewarn/s1/gw/status");
        assert!(!format!("{o:?}").contains("s3cret"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let o = options(&settings(&format!(
            "username = \"u\"\npassword_file = \"{}\"",
            file.display()
        )))
        .unwrap();
        assert_eq!(o.connection.password().map(Secret::expose), Some("from-file"));

        let err = options(&settings(
            "username = \"u\"\npassword_env = \"FOREWARN_TEST_UNSET_VARIABLE\"",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("FOREWARN_TEST_UNSET_VARIABLE"));
    }
}
