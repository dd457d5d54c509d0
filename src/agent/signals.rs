//! Signals and shutdown: SIGTERM or Ctrl-C stop the agent, SIGHUP reloads the models, and
//! every task watches one `watch` channel turn true, so stopping is one broadcast.

use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// Resolves once `rx` holds `true` (or its sender is gone).
pub(crate) async fn wait_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Turns every SIGHUP into a notification on `reload` until shutdown.
pub(crate) async fn forward_hangups(reload: Arc<Notify>, shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        let stop = wait_true(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = hup.recv() => reload.notify_one(),
                _ = &mut stop => return,
            }
        }
    }
    #[cfg(not(unix))]
    wait_true(shutdown).await;
}

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
