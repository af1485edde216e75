//! The mock engine's state on disk: one append-only journal of JSON lines, replayed at start.
//!
//! A change of an instance appends one line (`{"put":{…}}`, `{"forget":"id"}`,
//! `{"run":{"key":…,"n":…}}`) to a file the engine keeps open, the way a container daemon
//! writes to its database rather than creating a file per container: creating and renaming a
//! file cost 0.8 ms here (p99 1.5 ms), twice per apply, which was most of a mock apply's
//! time, while an append costs a few µs. The engine is for tests of everything above
//! engines, so its own cost should not hide the node's. Like the files it replaces, the
//! journal is not fsynced: it survives a `kill -9` of the process (each line is one `write`),
//! not a power cut. A line cut short by a crash is the last one, and is ignored at replay.
//!
//! At open the journal is compacted (the live state written to a temporary file and renamed
//! over it), and again when it holds many more lines than live entries.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::MockInstance;

/// File of the journal in the state directory.
pub(super) const FILE: &str = "instances.jsonl";
/// File of the start counts in the layout before the journal (with one file per instance),
/// read once at open and removed once in the journal.
const LEGACY_RUNS: &str = "runs.json";

/// One line of the journal, as written.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Line<'a> {
    Put(&'a MockInstance),
    Forget(&'a str),
    Run { key: &'a str, n: u32 },
}

/// One line of the journal, as read.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Put(Box<MockInstance>),
    Forget(String),
    Run { key: String, n: u32 },
}

/// What a journal holds: instances by id, and starts per workload version.
#[derive(Debug, Default)]
pub(super) struct State {
    pub instances: BTreeMap<String, MockInstance>,
    pub runs: BTreeMap<String, u32>,
}

#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: File,
    /// Lines in the file, to know when compacting pays.
    lines: usize,
}

impl Journal {
    /// Opens the journal of `dir` (and any files of the older layout), replays it and
    /// compacts it. Returns the journal and the state it held.
    pub fn open(dir: &Path) -> io::Result<(Self, State)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let (mut state, legacy) = read_legacy(dir)?;
        match std::fs::read(&path) {
            Ok(bytes) => replay(&bytes, &path, &mut state),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut journal = Self {
            file: append_to(&path)?,
            path,
            lines: 0,
        };
        journal.compact(&state.instances, &state.runs)?;
        // In the journal now: the files read go (an unreadable one stays, for a person to see).
        for path in legacy {
            std::fs::remove_file(path)?;
        }
        Ok((journal, state))
    }

    /// The state a journal in `dir` holds, without opening it for writing (for tests that
    /// look at what the engine left on disk).
    pub fn read(dir: &Path) -> io::Result<State> {
        let (mut state, _) = read_legacy(dir)?;
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => replay(&bytes, &path, &mut state),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(state)
    }

    pub fn put(&mut self, inst: &MockInstance) -> io::Result<()> {
        self.append(&Line::Put(inst))
    }

    pub fn forget(&mut self, id: &str) -> io::Result<()> {
        self.append(&Line::Forget(id))
    }

    pub fn run(&mut self, key: &str, n: u32) -> io::Result<()> {
        self.append(&Line::Run { key, n })
    }

    /// Whether the journal has grown well beyond `live` entries.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.lines > 4 * live + 1024
    }

    /// Rewrites the journal as this state alone: a temporary file renamed over it.
    pub fn compact(
        &mut self,
        instances: &BTreeMap<String, MockInstance>,
        runs: &BTreeMap<String, u32>,
    ) -> io::Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        let mut lines = 0;
        for inst in instances.values() {
            write_line(&mut out, &Line::Put(inst))?;
            lines += 1;
        }
        for (key, n) in runs {
            write_line(&mut out, &Line::Run { key, n: *n })?;
            lines += 1;
        }
        // The new file's own handle becomes the journal's (positioned at its end; this is the
        // only writer): after the rename there is nothing left to open, and so nothing that
        // could fail and leave appends going to the old, unlinked file.
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = file;
        self.lines = lines;
        Ok(())
    }

    fn append(&mut self, line: &Line<'_>) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        // One `write` of the whole line: a crash leaves it whole or cut at the end.
        self.file.write_all(&bytes)?;
        self.lines += 1;
        Ok(())
    }
}

fn append_to(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_line(out: &mut impl Write, line: &Line<'_>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Applies every line of `bytes` to `state`. A line that does not parse is skipped with a
/// warning (silently when it is the last and unterminated: a write cut by a crash).
fn replay(bytes: &[u8], path: &Path, state: &mut State) {
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(Entry::Put(inst)) => {
                state.instances.insert(inst.id.clone(), *inst);
            }
            Ok(Entry::Forget(id)) => {
                state.instances.remove(&id);
            }
            Ok(Entry::Run { key, n }) => {
                state.runs.insert(key, n);
            }
            Err(_) if i == last && !complete => {}
            Err(e) => tracing::warn!(
                path = %path.display(),
                line = i + 1,
                error = %e,
                "ignoring an unreadable line of the mock engine's journal"
            ),
        }
    }
}

/// Instances (`<id>.json`) and start counts (`runs.json`) of the layout before the journal,
/// and the files read.
fn read_legacy(dir: &Path) -> io::Result<(State, Vec<PathBuf>)> {
    let mut state = State::default();
    let mut read = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((state, read)),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") && !path.ends_with(LEGACY_RUNS) {
            match serde_json::from_slice::<MockInstance>(&std::fs::read(&path)?) {
                Ok(inst) => {
                    state.instances.insert(inst.id.clone(), inst);
                    read.push(path);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable mock instance")
                }
            }
        }
    }
    let runs = dir.join(LEGACY_RUNS);
    if let Ok(bytes) = std::fs::read(&runs) {
        if let Ok(parsed) = serde_json::from_slice(&bytes) {
            state.runs = parsed;
            read.push(runs);
        }
    }
    Ok((state, read))
}
