//! The demo's MQTT broker: rumqttd, embedded, so `forewarn demo` needs nothing but the
//! binary and still behaves like production: the agent's retained birth (status) message,
//! its last will, and persistent sessions (`clean_session = false`) work as on Mosquitto.
//! It listens on one MQTT 3.1.1 listener on loopback, plain TCP, without users: a demo
//! broker, not a production one; point `upstream.broker` at Mosquitto, EMQX or HiveMQ for
//! that.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// The largest message the demo broker takes. Why: alerts and the birth message are a few
/// KiB; 1 MiB is the agent's own default `max_payload`.
const MAX_PAYLOAD: usize = 1 << 20;

/// How long the broker has to start listening.
const START_TIME: Duration = Duration::from_secs(5);

/// Why the demo broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no free loopback port for the demo broker: {0}")]
    Port(std::io::Error),
    #[error("cannot start the demo broker's thread: {0}")]
    Thread(std::io::Error),
    #[error("the demo broker does not listen on {0} after {START_TIME:?}")]
    NotListening(SocketAddr),
}

fn config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "demo-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            // The commit log of each filter: 16 MiB in at most 4 segments bounds what the
            // demo broker keeps in memory.
            max_segment_size: 4 << 20,
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    }
}

/// Starts the broker on a free loopback port and returns its address once it listens.
/// rumqttd runs its router and listener on threads of its own, for the life of the
/// process.
pub fn start() -> Result<SocketAddr, BrokerError> {
    // rumqttd binds the address itself; a port the kernel just handed out is free.
    let listen = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(BrokerError::Port)?;
    let mut broker = Broker::new(config(listen));
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "demo broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    // Listening is seen by a bind that fails; a probing connection would make the broker
    // log an aborted CONNECT.
    let deadline = Instant::now() + START_TIME;
    while TcpListener::bind(listen).is_ok() {
        if Instant::now() > deadline {
            return Err(BrokerError::NotListening(listen));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(listen)
}
