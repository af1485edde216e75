//! Helpers for engines that run local processes and keep their state in files (process,
//! wasm): a process identified beyond its pid, so that a recycled pid is never mistaken for
//! the instance after a restart, and atomic JSON state files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mesh_protocol::spec::{ConfigKind, EnvSource, EnvVar};
use mesh_protocol::WorkloadSpec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A process, identified beyond its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot) when it was started.
    pub start_time: u64,
}

impl Proc {
    /// The process as it is now, if it exists.
    pub fn current(pid: u32) -> Option<Self> {
        start_time(pid).map(|start_time| Self { pid, start_time })
    }

    /// Still running (not a zombie) and still the same process.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

/// Start time of a live (non-zombie) process, from `/proc/<pid>/stat`.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields after it are
    // counted from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// Writes `value` as JSON to `path` atomically (a temporary file named after this process,
/// then a rename), so that a reader never sees half a file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Environment of a process or guest: literal values, ConfigMap/Secret keys from objects
/// that travelled with the workload, and the `metadata.name`/`metadata.namespace` fields.
/// Errors name the variable at `at` (e.g. `spec.containers[0]`).
pub fn resolve_env(
    spec: &WorkloadSpec,
    vars: &[EnvVar],
    at: &str,
) -> Result<Vec<(String, String)>, String> {
    vars.iter()
        .enumerate()
        .map(|(i, var)| {
            let at = format!("{at}.env[{i}] ({})", var.name);
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => v.clone(),
                (None, None) => String::new(),
                (None, Some(EnvSource::Field { path })) => match path.as_str() {
                    "metadata.name" => spec.name.clone(),
                    "metadata.namespace" => spec.namespace.clone(),
                    other => return Err(format!("{at}: field {other} is not available")),
                },
                (None, Some(EnvSource::ConfigMap { name, key })) => {
                    lookup(spec, ConfigKind::ConfigMap, name, key).ok_or_else(|| {
                        format!("{at}: ConfigMap {name} key {key} is not in the applied file")
                    })?
                }
                (None, Some(EnvSource::Secret { name, key })) => {
                    lookup(spec, ConfigKind::Secret, name, key).ok_or_else(|| {
                        format!("{at}: Secret {name} key {key} is not in the applied file")
                    })?
                }
            };
            Ok((var.name.clone(), value))
        })
        .collect()
}

fn lookup(spec: &WorkloadSpec, kind: ConfigKind, name: &str, key: &str) -> Option<String> {
    spec.config
        .iter()
        .find(|c| c.kind == kind && c.name == name)
        .and_then(|c| c.data.get(key).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = Proc::current(std::process::id()).expect("our own /proc entry");
        assert!(me.alive());
        let other = Proc {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.alive());
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn json_files_round_trip_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        assert_eq!(read_json::<Proc>(&path).expect("reads"), None);
        let p = Proc {
            pid: 7,
            start_time: 9,
        };
        write_json(&path, &p).expect("writes");
        assert_eq!(read_json::<Proc>(&path).expect("reads"), Some(p));
        std::fs::write(&path, "{").expect("writes");
        assert_eq!(
            read_json::<Proc>(&path).expect_err("corrupt").kind(),
            io::ErrorKind::InvalidData
        );
    }
}
