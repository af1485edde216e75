//! Where the runner's events go: frames to the host (while it listens), guest output as
//! lines to the log file, and the status file. All writes of one runner go through one
//! [`Sink`], so events are never interleaved mid-frame. [`GuestOutput`] is the guest's
//! stdout and stderr: WASI output streams that hand every write to the sink synchronously
//! (the write returns once the frame is on the host's pipe, so a slow host slows the guest
//! instead of growing a buffer).

use std::io::{self, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use mesh_protocol::api::LogStream;

use crate::logs::{self, LineSplitter, LogWriter};
use crate::protocol::{self, Event, MAX_OUTPUT_CHUNK};
use crate::state::{self, RunPhase, RunStatus};

struct Inner {
    /// The host's pipe; `None` once a write failed (the node went away).
    host: Option<Box<dyn Write + Send>>,
    log: Option<LogWriter>,
    stdout: LineSplitter,
    stderr: LineSplitter,
    finished: bool,
    /// `(compile_ms, cached)` once the guest started, kept for the final status.
    started: Option<(f64, bool)>,
    /// The `Running` status, until the ticker writes it (see [`Sink::write_running`]).
    running: Option<RunStatus>,
}

/// The runner's single writer.
pub struct Sink {
    inner: Mutex<Inner>,
    status_path: Option<PathBuf>,
    pid: u32,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("pid", &self.pid).finish()
    }
}

impl Sink {
    /// `host` receives frames; `log_path` and `status_path` are the instance's files.
    pub fn new(
        host: Option<Box<dyn Write + Send>>,
        log_path: Option<PathBuf>,
        status_path: Option<PathBuf>,
    ) -> Self {
        let log = log_path.and_then(|p| match LogWriter::open(&p) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("mesh-wasm-runner: cannot open log {}: {e}", p.display());
                None
            }
        });
        Self {
            inner: Mutex::new(Inner {
                host,
                log,
                stdout: LineSplitter::default(),
                stderr: LineSplitter::default(),
                finished: false,
                started: None,
                running: None,
            }),
            status_path,
            pid: std::process::id(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(inner: &mut Inner, event: &Event) {
        if let Some(host) = inner.host.as_mut() {
            if protocol::write_frame(host, event).is_err() {
                // EPIPE: the node went away (restart). The guest keeps running; its output
                // still reaches the log file and the status file.
                inner.host = None;
            }
        }
    }

    /// Sends a non-final event.
    pub fn event(&self, event: &Event) {
        let mut inner = self.lock();
        if !inner.finished {
            Self::send(&mut inner, event);
        }
    }

    /// Guest output: chunked frames to the host, whole lines to the log file.
    pub fn output(&self, stream: LogStream, bytes: &[u8]) {
        let mut inner = self.lock();
        if inner.finished {
            return;
        }
        for chunk in bytes.chunks(MAX_OUTPUT_CHUNK) {
            let data = String::from_utf8_lossy(chunk).into_owned();
            let event = match stream {
                LogStream::Stdout => Event::Stdout { data },
                LogStream::Stderr => Event::Stderr { data },
            };
            Self::send(&mut inner, &event);
        }
        let lines = match stream {
            LogStream::Stdout => inner.stdout.push(bytes),
            LogStream::Stderr => inner.stderr.push(bytes),
        };
        Self::log_lines(&mut inner, stream, lines);
    }

    fn log_lines(inner: &mut Inner, stream: LogStream, lines: Vec<String>) {
        if let Some(log) = inner.log.as_mut() {
            for text in lines {
                if log.append(&logs::line(stream, text)).is_err() {
                    inner.log = None;
                    return;
                }
            }
        }
    }

    /// The guest starts: the `Started` event now; the `Running` status at the ticker's first
    /// tick ([`Sink::write_running`]), so that a guest that ends before it (a hello world)
    /// writes one status file, not two (each a file created and renamed, 0.3 ms, on the
    /// guest's way to its exit). A node that restarts before the first tick finds a live
    /// runner without a status: Running, "compiling the module", as during a compile.
    pub fn running(&self, compile_ms: f64, cached: bool) {
        let mut inner = self.lock();
        inner.started = Some((compile_ms, cached));
        inner.running = Some(RunStatus {
            phase: RunPhase::Running,
            pid: self.pid,
            code: None,
            message: None,
            compile_ms: Some(compile_ms),
            cached: Some(cached),
            at: logs::now_millis(),
        });
        drop(inner);
        self.event(&Event::Started { compile_ms, cached });
    }

    /// Writes the `Running` status if the guest started and has not ended; the ticker calls
    /// it at every tick (only the first writes). Under the sink's lock, so that the final
    /// status cannot be written before it.
    pub fn write_running(&self) {
        let mut inner = self.lock();
        if inner.finished {
            return;
        }
        if let Some(status) = inner.running.take() {
            self.write_status(status);
        }
    }

    fn write_status(&self, status: RunStatus) {
        if let Some(path) = &self.status_path {
            if let Err(e) = state::write_json(path, &status) {
                eprintln!("mesh-wasm-runner: cannot write {}: {e}", path.display());
            }
        }
    }

    /// Ends the run: flushes partial lines, records the final status, sends the final
    /// event. Only the first call counts (the watchdog and the guest thread may race);
    /// returns whether this call was it.
    pub fn finish(&self, event: Event) -> bool {
        let mut inner = self.lock();
        if inner.finished {
            return false;
        }
        // Not written yet: the final status supersedes it.
        inner.running = None;
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let rest = match stream {
                LogStream::Stdout => inner.stdout.finish(),
                LogStream::Stderr => inner.stderr.finish(),
            };
            Self::log_lines(&mut inner, stream, rest.into_iter().collect());
        }
        let (phase, code, message) = match &event {
            Event::Exited { code } => (RunPhase::Exited, Some(*code), None),
            Event::Trapped { message } => (RunPhase::Trapped, None, Some(message.clone())),
            Event::Failed { message } => (RunPhase::Failed, None, Some(message.clone())),
            _ => (RunPhase::Stopped, None, None),
        };
        self.write_status(RunStatus {
            phase,
            pid: self.pid,
            code,
            message,
            compile_ms: inner.started.map(|s| s.0),
            cached: inner.started.map(|s| s.1),
            at: logs::now_millis(),
        });
        Self::send(&mut inner, &event);
        inner.finished = true;
        true
    }
}

/// Largest write the guest is invited to make at once.
const WRITE_BUDGET: usize = 64 * 1024;

/// One of the guest's output streams.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    stream: LogStream,
    sink: Arc<Sink>,
}

impl GuestOutput {
    pub fn new(stream: LogStream, sink: Arc<Sink>) -> Self {
        Self { stream, sink }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.output(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sink.output(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_status_is_never_overwritten_by_the_running_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        for code in 0..50 {
            let sink = Arc::new(Sink::new(None, None, Some(path.clone())));
            sink.running(0.1, true);
            // The ticker may tick at the same moment as the guest ends.
            let ticking = sink.clone();
            let tick = std::thread::spawn(move || ticking.write_running());
            assert!(sink.finish(Event::Exited { code }));
            tick.join().expect("ticked");
            sink.write_running();
            let status: RunStatus = state::read_json(&path).expect("readable").expect("written");
            assert_eq!(status.phase, RunPhase::Exited);
            assert_eq!(status.code, Some(code));
            assert_eq!(status.compile_ms, Some(0.1));
        }
    }

    #[test]
    fn the_running_status_is_written_at_the_first_tick_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        let sink = Sink::new(None, None, Some(path.clone()));
        sink.write_running();
        assert!(!path.exists(), "nothing before the guest starts");
        sink.running(2.5, false);
        assert!(!path.exists(), "not before the first tick");
        sink.write_running();
        let status: RunStatus = state::read_json(&path).expect("readable").expect("written");
        assert_eq!(status.phase, RunPhase::Running);
        assert_eq!((status.compile_ms, status.cached), (Some(2.5), Some(false)));
        std::fs::remove_file(&path).expect("removed");
        sink.write_running();
        assert!(!path.exists(), "written once");
    }
}
