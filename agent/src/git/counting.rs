//! Byte counters around transport streams, for the footprint figures (bytes on the wire).

use std::io::{BufRead, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared sent/received totals of one fetch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counter {
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl Counter {
    pub(crate) fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn add_received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Counts bytes read (and consumed, for `BufRead`).
pub(crate) struct CountingRead<R> {
    inner: R,
    counter: Counter,
}

impl<R> CountingRead<R> {
    pub(crate) fn new(inner: R, counter: Counter) -> Self {
        CountingRead { inner, counter }
    }
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.add_received(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingRead<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.counter.add_received(amt);
        self.inner.consume(amt);
    }
}

/// Counts bytes written.
pub(crate) struct CountingWrite<W> {
    inner: W,
    counter: Counter,
}

impl<W> CountingWrite<W> {
    pub(crate) fn new(inner: W, counter: Counter) -> Self {
        CountingWrite { inner, counter }
    }
}

impl<W: Write> Write for CountingWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.counter.add_sent(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Counts both directions of an async stream (the SSH TCP connection).
pub(crate) struct CountingStream<S> {
    inner: S,
    counter: Counter,
}

impl<S> CountingStream<S> {
    pub(crate) fn new(inner: S, counter: Counter) -> Self {
        CountingStream { inner, counter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.counter.add_received(n);
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res {
            self.counter.add_sent(*n);
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reads_writes_and_consumes() {
        let counter = Counter::default();
        let mut r = CountingRead::new(&b"hello world"[..], counter.clone());
        let mut buf = [0u8; 5];
        r.read_exact(&mut buf).unwrap();
        r.consume(3);
        let mut w = CountingWrite::new(Vec::new(), counter.clone());
        w.write_all(b"abc").unwrap();
        assert_eq!(counter.received(), 8);
        assert_eq!(counter.sent(), 3);
    }
}
