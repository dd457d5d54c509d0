//! forewarn: an edge agent that reads plant sensors (Modbus), keeps their history in a
//! local store (sled), watches them with rules, and forwards alerts to an MQTT broker
//! through a durable outbox. See `ARCHITECTURE.md` for the map of this crate.

pub mod agent;
pub mod alert;
pub mod backoff;
pub mod config;
pub mod demo;
pub mod detect;
pub mod http;
pub mod sample;
pub mod source;
pub mod stats;
pub mod store;
pub mod time;

/// Resolves on Ctrl-C or SIGTERM (systemd's stop).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
