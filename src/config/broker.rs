//! Broker URLs: `mqtt://host[:port]` and `mqtts://host[:port]`, parsed once by the checks
//! and by everything that connects.

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
