//! Streaming a response produced by blocking code (SQLite rows) without
//! holding it in memory: the blocking task writes into a [`ChannelWriter`]
//! (an `io::Write` that ships 64 KiB chunks over a bounded channel) and the
//! response body is a [`ChannelBody`] reading that channel. The bound gives
//! back-pressure: a slow client slows the query, memory stays flat. A client
//! that goes away makes the next write fail, which ends the query.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::body::Frame;
use tokio::sync::mpsc;

/// Size of one chunk sent to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the query and the socket.
const DEPTH: usize = 8;

type Item = Result<Bytes, io::Error>;

/// The writing end, used on a blocking thread.
pub struct ChannelWriter {
    tx: mpsc::Sender<Item>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Ends the body with an error (the client sees a truncated transfer, not a
    /// complete-looking file).
    pub fn abort(self, why: &str) {
        let _ = self
            .tx
            .blocking_send(Err(io::Error::other(why.to_string())));
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The reading end: an HTTP body.
pub struct ChannelBody {
    rx: mpsc::Receiver<Item>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// A connected writer and response body.
pub fn channel() -> (ChannelWriter, axum::body::Body) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        axum::body::Body::new(ChannelBody { rx }),
    )
}
