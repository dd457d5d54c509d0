//! The MQTT connection layer that every client of the agent shares: the upstream alert
//! publisher, the MQTT inputs and the telemetry forwarders. It turns a resolved broker
//! endpoint into rumqttc options (address, keep-alive, TLS with the `ring` provider,
//! credentials held as [`crate::base::secret::Secret`]), so each client connects the same
//! way and a problem with a file or a password is found the same way for all of them.

pub mod tls;
