//! A plugin's stdout and stderr: each line goes to the host's log (tracing),
//! tagged with the plugin's name and the stream, instead of the host's own
//! stderr. A guest cannot flood the log: each stream may write
//! [`OUTPUT_BUDGET_BYTES`] per [`OUTPUT_WINDOW`]; the rest is dropped and
//! the drop is logged once per window. A line longer than
//! [`MAX_LINE_BYTES`] is cut there.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes a stream may write per window.
pub const OUTPUT_BUDGET_BYTES: usize = 64 << 10;
/// The budget's window.
pub const OUTPUT_WINDOW: Duration = Duration::from_secs(10);
/// Longest line logged as is.
pub const MAX_LINE_BYTES: usize = 4096;

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

struct Lines {
    plugin: String,
    stream: Stream,
    pending: Vec<u8>,
    window_start: Instant,
    used: usize,
    dropped: u64,
}

impl Lines {
    fn write(&mut self, mut bytes: &[u8]) {
        if self.window_start.elapsed() >= OUTPUT_WINDOW {
            if self.dropped > 0 {
                tracing::warn!(
                    plugin = %self.plugin,
                    stream = self.stream.name(),
                    dropped_bytes = self.dropped,
                    "plugin output over {OUTPUT_BUDGET_BYTES} bytes per {OUTPUT_WINDOW:?} was dropped"
                );
            }
            self.window_start = Instant::now();
            self.used = 0;
            self.dropped = 0;
        }
        let room = OUTPUT_BUDGET_BYTES.saturating_sub(self.used);
        if bytes.len() > room {
            self.dropped += (bytes.len() - room) as u64;
            bytes = &bytes[..room];
        }
        self.used += bytes.len();
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            self.pending.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") || self.pending.len() >= MAX_LINE_BYTES {
                self.emit();
            }
        }
    }

    /// Logs the pending line (without its newline), if any.
    fn emit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let end = self.pending.len().min(MAX_LINE_BYTES);
        let line = String::from_utf8_lossy(&self.pending[..end]);
        let line = line.trim_end_matches(['\n', '\r']);
        let (plugin, stream) = (self.plugin.as_str(), self.stream.name());
        match self.stream {
            Stream::Stderr => tracing::warn!(plugin, stream, "{line}"),
            Stream::Stdout => tracing::info!(plugin, stream, "{line}"),
        }
        self.pending.clear();
    }
}

/// One instance's stdout or stderr (clones share the line buffer).
#[derive(Clone)]
pub(crate) struct LogPipe {
    lines: Arc<Mutex<Lines>>,
}

impl LogPipe {
    pub(crate) fn new(plugin: &str, stream: Stream) -> Self {
        LogPipe {
            lines: Arc::new(Mutex::new(Lines {
                plugin: plugin.to_owned(),
                stream,
                pending: Vec::new(),
                window_start: Instant::now(),
                used: 0,
                dropped: 0,
            })),
        }
    }

    fn write(&self, bytes: &[u8]) {
        if let Ok(mut l) = self.lines.lock() {
            l.write(bytes);
        }
    }

    /// Logs a partial last line (after a call).
    pub(crate) fn flush_line(&self) {
        if let Ok(mut l) = self.lines.lock() {
            l.emit();
        }
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LogPipe::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always writable: what is over the budget is dropped, not refused.
        Ok(OUTPUT_BUDGET_BYTES)
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        LogPipe::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_cut_and_bounded() {
        let pipe = LogPipe::new("p", Stream::Stderr);
        pipe.write(b"first line\nsecond ");
        pipe.write(b"half\n");
        {
            let l = pipe.lines.lock().unwrap();
            assert!(l.pending.is_empty());
            assert_eq!(l.used, 23);
        }
        pipe.write(b"no newline");
        pipe.flush_line();
        assert!(pipe.lines.lock().unwrap().pending.is_empty());
        // Over the budget: the rest of the window's output is dropped.
        pipe.write(&vec![b'x'; OUTPUT_BUDGET_BYTES]);
        let l = pipe.lines.lock().unwrap();
        assert_eq!(l.used, OUTPUT_BUDGET_BYTES);
        assert_eq!(l.dropped, 33);
        // Long lines are cut at MAX_LINE_BYTES: nothing stays pending.
        assert!(l.pending.len() < MAX_LINE_BYTES);
    }
}
