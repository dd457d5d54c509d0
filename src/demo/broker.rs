//! A small MQTT 3.1.1 broker for the demo, so `forewarn demo` needs nothing but the
//! binary. It accepts connections, subscriptions with wildcards, QoS 0 and 1 publishes
//! (acknowledging QoS 1 to the publisher) and forwards each message to matching
//! subscribers at QoS 0. It keeps no sessions and no retained messages: it is a demo
//! stand-in, not a broker for production; point `upstream.broker` at Mosquitto, EMQX or
//! HiveMQ for that.

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, matches, QoS};
use rumqttc::{ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const MAX_PACKET: usize = 1 << 20;

#[derive(Default)]
struct Routes {
    /// (connection id, topic filter, the connection's outgoing queue)
    subs: Vec<(u64, String, mpsc::UnboundedSender<Publish>)>,
}

/// Accepts clients until the listener fails.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let routes = Arc::new(Mutex::new(Routes::default()));
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = listener.accept().await?;
        next_id += 1;
        let (id, routes) = (next_id, routes.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, id, routes.clone()).await {
                tracing::debug!(%peer, error = %e, "demo broker: connection closed");
            }
            routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .subs
                .retain(|(c, _, _)| *c != id);
        });
    }
}

async fn read_packet(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Option<Packet>, String> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(Some(p)),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Ok(None);
        }
    }
}

async fn write_packet(stream: &mut TcpStream, packet: Packet) -> Result<(), String> {
    let mut out = BytesMut::new();
    packet.write(&mut out, MAX_PACKET).map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())
}

async fn connection(mut stream: TcpStream, id: u64, routes: Arc<Mutex<Routes>>) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(4096);
    match read_packet(&mut stream, &mut buf).await? {
        Some(Packet::Connect(_)) => {}
        other => return Err(format!("expected CONNECT, got {other:?}")),
    }
    write_packet(
        &mut stream,
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
    )
    .await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Publish>();
    loop {
        tokio::select! {
            packet = read_packet(&mut stream, &mut buf) => match packet? {
                None | Some(Packet::Disconnect) => return Ok(()),
                Some(Packet::Publish(p)) => {
                    if p.qos != QoS::AtMostOnce {
                        write_packet(&mut stream, Packet::PubAck(PubAck::new(p.pkid))).await?;
                    }
                    let targets: Vec<_> = routes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .subs
                        .iter()
                        .filter(|(_, filter, _)| matches(&p.topic, filter))
                        .map(|(_, _, q)| q.clone())
                        .collect();
                    for q in targets {
                        let _ = q.send(Publish::from_bytes(p.topic.clone(), QoS::AtMostOnce, p.payload.clone()));
                    }
                }
                Some(Packet::Subscribe(s)) => {
                    {
                        let mut r = routes.lock().unwrap_or_else(|p| p.into_inner());
                        for f in &s.filters {
                            r.subs.push((id, f.path.clone(), tx.clone()));
                        }
                    }
                    let codes = s.filters.iter().map(|_| SubscribeReasonCode::Success(QoS::AtMostOnce)).collect();
                    write_packet(&mut stream, Packet::SubAck(SubAck::new(s.pkid, codes))).await?;
                }
                Some(Packet::PingReq) => write_packet(&mut stream, Packet::PingResp).await?,
                Some(_) => {}
            },
            Some(p) = rx.recv() => write_packet(&mut stream, Packet::Publish(p)).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{AsyncClient, Event, MqttOptions};
    use std::time::Duration;

    #[tokio::test]
    async fn forwards_to_wildcard_subscribers_and_acks_qos1() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener));

        let (sub, mut sub_loop) = AsyncClient::new(MqttOptions::new("sub", "127.0.0.1", port), 10);
        sub.subscribe("plant/+/alerts/#", rumqttc::QoS::AtMostOnce)
            .await
            .unwrap();
        let (publ, mut pub_loop) = AsyncClient::new(MqttOptions::new("pub", "127.0.0.1", port), 10);

        let got = tokio::time::timeout(Duration::from_secs(5), async {
            let mut published = false;
            loop {
                tokio::select! {
                    e = sub_loop.poll() => match e.unwrap() {
                        Event::Incoming(Packet::SubAck(_)) if !published => {
                            publ.publish("plant/a/alerts/x/y", rumqttc::QoS::AtLeastOnce, false, "hello").await.unwrap();
                            publ.publish("plant/a/other", rumqttc::QoS::AtMostOnce, false, "no").await.unwrap();
                            published = true;
                        }
                        Event::Incoming(Packet::Publish(p)) => return p,
                        _ => {}
                    },
                    e = pub_loop.poll() => { e.unwrap(); }
                }
            }
        })
        .await
        .expect("message forwarded");
        assert_eq!(got.topic, "plant/a/alerts/x/y");
        assert_eq!(&got.payload[..], b"hello");
    }
}
