//! A response body written by a blocking store read, streamed to the socket in bounded
//! chunks: a `/query` over months of many sensors never sits whole in memory. At most
//! [`CHUNKS_IN_FLIGHT`] chunks of [`CHUNK_BYTES`] wait for a slow client; when the client
//! goes away the next write fails and the store read stops. An answer that fits one chunk,
//! or fails before filling one, is sent whole (with its `Content-Length`, or as a 500), as
//! the API always did; a longer one is sent chunked, and a store error after its first
//! chunk cuts the connection before the last chunk, so a client sees it incomplete.

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::{Body, Bytes};
use http_body::Frame;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::StoreError;

/// Bytes handed to the socket at a time. Why: large enough that a sensor-day of JSON lines
/// (some 6 MB) takes few hops, small enough that most answers fit one and keep a length.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks waiting for the socket. Why: the store read runs this far ahead of a slow
/// client and no further, so one answer holds about 256 KiB however large it is.
const CHUNKS_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs `produce` on the blocking pool and returns its output as a body, once the first
/// chunk is full or `produce` is done.
pub async fn blocking<F>(produce: F) -> Result<Body, StreamError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), StoreError> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let task = tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
        };
        produce(&mut out)?;
        Ok(Bytes::from(out.buf))
    });
    // The writer's sender closes when `produce` returns: no chunk means a short answer.
    match rx.recv().await {
        None => Ok(Body::from(task.await??)),
        Some(first) => Ok(Body::new(Chunks {
            first: Some(first),
            rx,
            rest: Some(task),
        })),
    }
}

/// Collects writes and sends each full chunk to the response.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
            // Fails only once the response is dropped: the client left or ran out of time.
            self.tx
                .blocking_send(Bytes::from(chunk))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client is gone"))?;
        }
        Ok(data.len())
    }

    /// The tail goes out with the task's result, when the whole answer is known good.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The body of an answer longer than one chunk: the chunks as they come, then the tail
/// or the error the blocking task returned.
struct Chunks {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    rest: Option<JoinHandle<Result<Bytes, StoreError>>>,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(chunk) = ready!(this.rx.poll_recv(cx)) {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        let Some(task) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let done = ready!(Pin::new(task).poll(cx));
        this.rest = None;
        Poll::Ready(match done {
            Ok(Ok(tail)) if tail.is_empty() => None,
            Ok(Ok(tail)) => Some(Ok(Frame::data(tail))),
            Ok(Err(e)) => Some(Err(cut_short(e.into()))),
            Err(e) => Some(Err(cut_short(e.into()))),
        })
    }
}

fn cut_short(e: StreamError) -> StreamError {
    tracing::warn!(error = %e, "http answer cut short");
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    /// The body's bytes, and the error it ended with.
    async fn drain(mut body: Body) -> (Vec<u8>, Option<String>) {
        let mut bytes = Vec::new();
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                None => return (bytes, None),
                Some(Ok(frame)) => bytes.extend_from_slice(frame.data_ref().map_or(&[][..], |d| &d[..])),
                Some(Err(e)) => return (bytes, Some(e.to_string())),
            }
        }
    }

    fn lines(n: usize) -> impl FnOnce(&mut dyn Write) -> io::Result<()> {
        move |out| (0..n).try_for_each(|i| writeln!(out, "line {i:08}"))
    }

    #[tokio::test]
    async fn short_answers_are_whole_and_long_ones_stream() {
        let short = blocking(|out| lines(10)(out).map_err(|e| StoreError::Db(e.to_string())))
            .await
            .unwrap();
        assert_eq!(short.size_hint().exact(), Some(140));
        assert_eq!(drain(short).await, (lines_text(10), None));
        let long = blocking(|out| lines(20_000)(out).map_err(|e| StoreError::Db(e.to_string())))
            .await
            .unwrap();
        assert_eq!(long.size_hint().exact(), None);
        assert_eq!(drain(long).await, (lines_text(20_000), None));
    }

    #[tokio::test]
    async fn a_failure_is_a_500_before_the_first_chunk_and_a_cut_after() {
        let early = blocking(|out| {
            lines(10)(out).map_err(|e| StoreError::Db(e.to_string()))?;
            Err(StoreError::Corrupt("chunk 7".into()))
        })
        .await;
        assert!(matches!(early, Err(StreamError::Store(StoreError::Corrupt(_)))));
        let late = blocking(|out| {
            lines(20_000)(out).map_err(|e| StoreError::Db(e.to_string()))?;
            Err(StoreError::Corrupt("chunk 7".into()))
        })
        .await
        .unwrap();
        let (bytes, error) = drain(late).await;
        assert!(
            bytes.len() >= CHUNK_BYTES && bytes.len() < 20_000 * 14,
            "{}",
            bytes.len()
        );
        assert_eq!(error.as_deref(), Some("corrupt data: chunk 7"));
    }

    fn lines_text(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| format!("line {i:08}\n").into_bytes()).collect()
    }
}
