//! The runner protocol: how the node talks to `mesh-wasm-runner` over the child's stdin and
//! stdout.
//!
//! Every message is one **frame**: a `u32` big-endian byte length, then that many bytes of
//! UTF-8 JSON. A frame longer than [`MAX_FRAME_BYTES`] is a protocol error and the reader
//! stops (it never allocates more than that). JSON objects are tagged by `"type"`.
//!
//! Host → runner (stdin): exactly one [`Request::Start`], then optionally [`Request::Stop`].
//! End of stdin means the host went away (a node restart); the runner keeps running the
//! guest and keeps writing its log and status files, so a restarted node can adopt it.
//!
//! Runner → host (stdout): [`Event::Started`] once the module is compiled or loaded from
//! the compile cache, any number of [`Event::Stdout`]/[`Event::Stderr`] chunks (each at most
//! [`MAX_OUTPUT_CHUNK`] bytes of guest output), then exactly one final event:
//! [`Event::Exited`], [`Event::Trapped`], [`Event::Failed`] or [`Event::Stopped`], after
//! which the runner exits. A runner that ends without a final event died (killed by a
//! signal): the host reports how from its exit status.
//!
//! The same text is in `engines/wasm/PROTOCOL.md`.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::digest::Digest;

/// Largest frame either side accepts (1 MiB).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Largest piece of guest output in one `Stdout`/`Stderr` event. Bigger writes are split.
pub const MAX_OUTPUT_CHUNK: usize = 16 * 1024;

/// Host → runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Request {
    Start(Box<Start>),
    /// Interrupt the guest at its next epoch tick and report [`Event::Stopped`].
    Stop,
}

/// Everything the runner needs to run one guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// Workload name: the guest's `argv[0]`.
    pub name: String,
    /// The module file (in the node's content-addressed store).
    pub module_path: PathBuf,
    /// The bytes at `module_path` must hash to this, or the runner refuses to run them.
    pub digest: Digest,
    /// `argv[1..]`.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Largest linear memory the guest may grow to.
    pub memory_limit_bytes: u64,
    /// Wall-clock deadline from the start of the guest; `None` runs until it exits.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Period of the epoch ticker that interrupts the guest to check the deadline and
    /// stop requests (the precision of both).
    pub epoch_tick_ms: u64,
    /// Host directory preopened as `/scratch` (the only host path the guest sees).
    pub scratch_dir: PathBuf,
    /// Directory of the compile cache (`<key>.cwasm` files).
    pub cache_dir: PathBuf,
    /// Where the runner appends guest output as JSON lines (survives the host).
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// Where the runner keeps its current status as JSON (survives the host).
    #[serde(default)]
    pub status_path: Option<PathBuf>,
}

/// Runner → host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// The module is compiled (or loaded from the cache) and the guest is being started.
    Started {
        /// Time to obtain the compiled module, in milliseconds (fractional).
        compile_ms: f64,
        /// Loaded from the compile cache rather than compiled.
        cached: bool,
    },
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    /// The guest returned from `_start` (code 0) or called `proc_exit`.
    Exited {
        code: i32,
    },
    /// The guest trapped: `unreachable`, out-of-bounds access, the memory limit or the
    /// deadline. The message says which.
    Trapped {
        message: String,
    },
    /// The guest could not be run: invalid module, missing import, digest mismatch, …
    Failed {
        message: String,
    },
    /// The guest was interrupted after a [`Request::Stop`].
    Stopped,
}

impl Event {
    /// True for the events that end a run.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Event::Exited { .. } | Event::Trapped { .. } | Event::Failed { .. } | Event::Stopped
        )
    }
}

fn too_big(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes"),
    )
}

fn encode<T: Serialize>(msg: &T) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(too_big(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one frame and flushes.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    w.write_all(&encode(msg)?)?;
    w.flush()
}

/// Reads one frame. `Ok(None)` on a clean end of stream between frames.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(too_big(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    decode(&body).map(Some)
}

/// Async [`write_frame`].
pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> io::Result<()> {
    w.write_all(&encode(msg)?).await?;
    w.flush().await
}

/// Async [`read_frame`]. Not cancel-safe: a frame may be half read when dropped.
pub async fn read_frame_async<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(too_big(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    decode(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversize_is_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Event::Exited { code: 3 }).expect("writes");
        write_frame(&mut buf, &Event::Stopped).expect("writes");
        assert_eq!(&buf[..4], &26u32.to_be_bytes()); // {"type":"Exited","code":3}
        let mut r = &buf[..];
        assert_eq!(
            read_frame::<Event>(&mut r).expect("reads"),
            Some(Event::Exited { code: 3 })
        );
        assert_eq!(
            read_frame::<Event>(&mut r).expect("reads"),
            Some(Event::Stopped)
        );
        assert_eq!(read_frame::<Event>(&mut r).expect("eof"), None);

        let mut huge = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let err = read_frame::<Event>(&mut &huge[..]).expect_err("too big");
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn truncated_frame_is_an_error_not_eof() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Event::Exited { code: 0 }).expect("writes");
        buf.truncate(buf.len() - 2);
        assert!(read_frame::<Event>(&mut &buf[..]).is_err());
    }
}
