//! Component stdout/stderr, line by line, each tagged with its component: either echoed to the
//! host's stderr (as `spin up` follows component output) or captured in memory for tests.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
    /// A message of the host about the component (e.g. a refused outbound connection).
    Host,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub component: String,
    pub stream: LogStream,
    pub line: String,
}

/// Collects the output of all components of an app. The default echoes and keeps nothing,
/// so that a long manual run does not grow; `capture` keeps every line for a test to read.
#[derive(Clone, Default)]
pub struct LogSink {
    lines: Arc<Mutex<Vec<LogLine>>>,
    capture: bool,
}

impl LogSink {
    /// A sink that keeps lines in memory instead of echoing them.
    pub fn capture() -> Self {
        Self { capture: true, ..Self::default() }
    }

    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().unwrap().clone()
    }

    pub fn push(&self, component: &str, stream: LogStream, line: String) {
        if self.capture {
            let line = LogLine { component: component.to_string(), stream, line };
            self.lines.lock().unwrap().push(line);
        } else {
            let tag = match stream {
                LogStream::Stdout | LogStream::Stderr => "",
                LogStream::Host => "host: ",
            };
            eprintln!("[{component}] {tag}{line}");
        }
    }

    /// The stdout or stderr to give a component instance.
    pub(crate) fn output(&self, component: &Arc<str>, stream: LogStream) -> ComponentOutput {
        ComponentOutput { sink: self.clone(), component: component.clone(), stream }
    }
}

/// A component's stdout or stderr.
pub(crate) struct ComponentOutput {
    sink: LogSink,
    component: Arc<str>,
    stream: LogStream,
}

impl ComponentOutput {
    fn writer(&self) -> LineWriter {
        LineWriter {
            sink: self.sink.clone(),
            component: self.component.clone(),
            stream: self.stream,
            pending: Vec::new(),
        }
    }
}

impl IsTerminal for ComponentOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ComponentOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

/// Splits written bytes into lines; a last line without a newline is emitted when the stream is
/// dropped (at the end of the instance).
struct LineWriter {
    sink: LogSink,
    component: Arc<str>,
    stream: LogStream,
    pending: Vec<u8>,
}

impl LineWriter {
    fn take(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        self.sink.push(&self.component, self.stream, line);
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1024 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_into_tagged_lines() {
        let sink = LogSink::capture();
        let component: Arc<str> = Arc::from("c1");
        {
            let mut writer = sink.output(&component, LogStream::Stdout).writer();
            writer.take(b"one\ntw");
            writer.take(b"o\r\nthree");
        }
        let lines: Vec<_> = sink.lines().into_iter().map(|l| (l.component, l.line)).collect();
        assert_eq!(lines, [("c1".into(), "one".into()), ("c1".into(), "two".into()), ("c1".into(), "three".into())]);
    }
}
