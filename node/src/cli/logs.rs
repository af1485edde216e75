//! `meshctl logs -f`: the node gathers the lines of every replica, wherever it runs (each
//! line's source names its node when there are several); this asks again every [`PERIOD`]
//! for the newest [`WINDOW`] lines and prints those it has not printed.
//!
//! What is new is found per source (replica and container): lines stamped with a time are
//! new when newer than the last printed (or equally old and not printed yet); lines without
//! one (the process engine's) are new after the longest run of them that ends what was
//! printed last. More than [`WINDOW`] lines of one source between two asks lose the excess
//! (said on stderr).

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::Duration;

use mesh_protocol::api::LogLine;
use mesh_protocol::WorkloadId;

use super::backend::Backend;
use super::output::{print_value, Format};

/// How often the node is asked.
pub const PERIOD: Duration = Duration::from_millis(500);
/// Lines asked for each time.
pub const WINDOW: usize = 500;

/// What was printed of one source.
#[derive(Debug, Default)]
struct Source {
    /// The newest printed lines (at most [`WINDOW`]).
    printed: VecDeque<(Option<u64>, String)>,
}

impl Source {
    /// The lines of `fresh` (oldest first, this source's newest) not printed yet.
    fn new_lines<'a>(&self, fresh: &[&'a LogLine]) -> (Vec<&'a LogLine>, bool) {
        let last_at = self.printed.iter().rev().find_map(|(at, _)| *at);
        if let (Some(last), true) = (last_at, fresh.iter().all(|l| l.at.is_some())) {
            let out: Vec<&LogLine> = fresh
                .iter()
                .filter(|l| {
                    let at = l.at.unwrap_or(0);
                    at > last
                        || (at == last
                            && !self
                                .printed
                                .iter()
                                .any(|(a, s)| *a == Some(at) && *s == l.line))
                })
                .copied()
                .collect();
            return (out, false);
        }
        // The longest prefix of `fresh` that ends what was printed.
        let printed: Vec<&str> = self.printed.iter().map(|(_, s)| s.as_str()).collect();
        let max = printed.len().min(fresh.len());
        let overlap = (0..=max)
            .rev()
            .find(|&k| {
                fresh[..k]
                    .iter()
                    .map(|l| l.line.as_str())
                    .eq(printed[printed.len() - k..].iter().copied())
            })
            .unwrap_or(0);
        let lost = !printed.is_empty() && overlap == 0 && fresh.len() >= WINDOW;
        (fresh[overlap..].to_vec(), lost)
    }

    fn remember(&mut self, line: &LogLine) {
        self.printed.push_back((line.at, line.line.clone()));
        while self.printed.len() > WINDOW {
            self.printed.pop_front();
        }
    }
}

fn print_line(fmt: Format, l: &LogLine) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !fmt.is_table() {
        writeln!(out, "{}", serde_json::to_string(l)?)?;
    } else {
        writeln!(out, "{}", super::output::log_line(l))?;
    }
    out.flush()?;
    Ok(())
}

/// Follows `id`'s logs until Ctrl-C: the last `tail` lines first (default 10), then new ones.
pub async fn follow(
    backend: &Backend,
    fmt: Format,
    id: &WorkloadId,
    tail: Option<usize>,
) -> anyhow::Result<()> {
    if fmt == Format::Yaml {
        // One document per line would not be YAML; JSON lines are what a script reads.
        return print_value(fmt, &"logs -f prints text or JSON lines (-o json)");
    }
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let first = backend.logs(id, Some(WINDOW)).await?;
    let skip = first.lines.len().saturating_sub(tail.unwrap_or(10));
    for (i, l) in first.lines.iter().enumerate() {
        let src = sources.entry(source_key(l)).or_default();
        src.remember(l);
        if i >= skip {
            print_line(fmt, l)?;
        }
    }
    let mut poll = super::watch::Poll::every(PERIOD);
    while poll.next().await {
        let logs = match backend.logs(id, Some(WINDOW)).await {
            Ok(l) => l,
            // Between a replica moving and its new node answering, or a delete: say so once
            // a cycle and go on; Ctrl-C ends it.
            Err(e) => {
                eprintln!("logs: {e}");
                continue;
            }
        };
        let mut by_source: BTreeMap<String, Vec<&LogLine>> = BTreeMap::new();
        for l in &logs.lines {
            by_source.entry(source_key(l)).or_default().push(l);
        }
        for (key, fresh) in by_source {
            let src = sources.entry(key.clone()).or_default();
            let (new, lost) = src.new_lines(&fresh);
            if lost {
                eprintln!(
                    "logs: {key}: more than {WINDOW} lines since the last read; some were skipped"
                );
            }
            for l in new {
                print_line(fmt, l)?;
                src.remember(l);
            }
        }
    }
    Ok(())
}

fn source_key(l: &LogLine) -> String {
    l.source.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::api::LogStream;

    fn line(at: Option<u64>, s: &str) -> LogLine {
        LogLine {
            at,
            stream: LogStream::Stdout,
            source: None,
            line: s.to_string(),
            correlation: None,
        }
    }

    fn texts(v: &[&LogLine]) -> Vec<String> {
        v.iter().map(|l| l.line.clone()).collect()
    }

    #[test]
    fn untimed_lines_after_the_overlap_are_new() {
        let mut src = Source::default();
        for l in [line(None, "a"), line(None, "b"), line(None, "c")] {
            src.remember(&l);
        }
        let fresh = [
            line(None, "b"),
            line(None, "c"),
            line(None, "d"),
            line(None, "e"),
        ];
        let refs: Vec<&LogLine> = fresh.iter().collect();
        let (new, lost) = src.new_lines(&refs);
        assert_eq!(texts(&new), ["d", "e"]);
        assert!(!lost);
        // Nothing new: nothing printed.
        let same: Vec<&LogLine> = fresh[..2].iter().collect();
        assert!(src.new_lines(&same).0.is_empty());
    }

    #[test]
    fn timed_lines_newer_than_the_last_printed_are_new() {
        let mut src = Source::default();
        src.remember(&line(Some(10), "tick"));
        src.remember(&line(Some(20), "tick"));
        let fresh = [
            line(Some(10), "tick"),
            line(Some(20), "tick"),
            line(Some(20), "tock"),
            line(Some(30), "tick"),
        ];
        let refs: Vec<&LogLine> = fresh.iter().collect();
        let (new, _) = src.new_lines(&refs);
        assert_eq!(texts(&new), ["tock", "tick"]);
        assert_eq!(new[1].at, Some(30));
    }
}
