//! Guest output as log lines: splitting byte chunks into lines, the bounded per-instance log
//! file (JSON lines of [`LogLine`], one rotated generation), and the bounded in-memory ring.
//!
//! The runner is the only writer of an instance's log file while it lives (so the file
//! survives a node restart); the node appends one last line when a runner dies without
//! saying why. Readers take the rotated file then the current one.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use mesh_protocol::api::{LogLine, LogStream};

/// Longest line kept whole; longer output is cut into lines of this size.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Size at which the log file is rotated to `<name>.1` (the older generation is dropped),
/// so one instance uses at most twice this on disk.
pub const MAX_LOG_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Lines kept in memory per instance.
pub const MAX_RING_LINES: usize = 10_000;

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Turns a stream of byte chunks into complete lines (without the `\n`; a trailing `\r` is
/// dropped too). Invalid UTF-8 is replaced, never refused.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk; returns the lines it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                out.push(self.take());
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE_BYTES {
                    out.push(self.take());
                }
            }
        }
        out
    }

    /// The unterminated rest, if any (end of stream).
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
    }
}

/// One line with the current time.
pub fn line(stream: LogStream, text: impl Into<String>) -> LogLine {
    LogLine {
        at: Some(now_millis()),
        stream,
        source: None,
        line: text.into(),
        correlation: None,
    }
}

/// Appends [`LogLine`]s to a file as JSON lines, rotating at [`MAX_LOG_FILE_BYTES`].
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

impl LogWriter {
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self { path, file, size })
    }

    pub fn append(&mut self, line: &LogLine) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        if self.size > 0 && self.size + bytes.len() as u64 > MAX_LOG_FILE_BYTES {
            fs::rename(&self.path, rotated(&self.path))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// Appends one line to a log file (for the node, once the runner is gone).
pub fn append_line(path: &Path, line: &LogLine) -> io::Result<()> {
    LogWriter::open(path)?.append(line)
}

/// The last `tail` lines (all when `None`) of a log file and its rotated generation.
/// Missing files read as empty; unparsable lines (a torn last write) are skipped.
pub fn read_log_file(path: &Path, tail: Option<usize>) -> io::Result<Vec<LogLine>> {
    let mut ring = LogRing::new(tail.unwrap_or(usize::MAX));
    for p in [rotated(path), path.to_path_buf()] {
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for text in BufReader::new(file).lines() {
            if let Ok(line) = serde_json::from_str::<LogLine>(&text?) {
                ring.push(line);
            }
        }
    }
    Ok(ring.lines(None))
}

/// The last N lines, in memory.
#[derive(Debug)]
pub struct LogRing {
    cap: usize,
    lines: VecDeque<LogLine>,
}

impl LogRing {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            lines: VecDeque::new(),
        }
    }

    pub fn push(&mut self, line: LogLine) {
        if self.cap == 0 {
            return;
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// A copy of the last `tail` lines (all when `None`).
    pub fn lines(&self, tail: Option<usize>) -> Vec<LogLine> {
        let skip = tail.map_or(0, |n| self.lines.len().saturating_sub(n));
        self.lines.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_handles_chunks_crlf_and_long_lines() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"hel").is_empty());
        assert_eq!(s.push(b"lo\r\nwor"), vec!["hello".to_string()]);
        assert_eq!(s.push(b"ld\n\n"), vec!["world".to_string(), String::new()]);
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let lines = s.push(&long);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(s.finish().map(|l| l.len()), Some(10));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn log_file_rotates_and_reads_back_the_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        let mut w = LogWriter::open(&path).expect("opens");
        let big = "y".repeat(MAX_LINE_BYTES);
        let n = (MAX_LOG_FILE_BYTES as usize / MAX_LINE_BYTES) * 3;
        for i in 0..n {
            w.append(&line(LogStream::Stdout, format!("{i} {big}")))
                .expect("appends");
        }
        let on_disk = fs::metadata(&path).expect("file").len()
            + fs::metadata(rotated(&path)).expect("rotated").len();
        assert!(on_disk <= 2 * MAX_LOG_FILE_BYTES, "{on_disk}");
        let last = read_log_file(&path, Some(2)).expect("reads");
        assert_eq!(last.len(), 2);
        assert!(last[1].line.starts_with(&format!("{} ", n - 1)));
        assert!(read_log_file(&dir.path().join("none"), None)
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn ring_keeps_the_last_lines() {
        let mut r = LogRing::new(3);
        for i in 0..5 {
            r.push(line(LogStream::Stderr, i.to_string()));
        }
        let texts: Vec<_> = r.lines(None).into_iter().map(|l| l.line).collect();
        assert_eq!(texts, ["2", "3", "4"]);
        assert_eq!(r.lines(Some(1))[0].line, "4");
    }
}
