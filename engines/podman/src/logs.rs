//! Logs of a pod instance: every container's stdout and stderr, merged by time, each line
//! tagged with its container's name (without the pod prefix).

use futures::StreamExt as _;
use mesh_protocol::api::{LogLine, LogStream};
use mesh_runtime::error::Result;
use mesh_runtime::{Error, Handle, LogOptions};
use podman_api::conn::TtyChunk;
use podman_api::opts::ContainerLogsOpts;

use crate::api::{call_opt, API_TIMEOUT};
use crate::handle::InstanceData;
use crate::{PodmanEngine, NAME};

/// Milliseconds since the epoch of an RFC 3339 time (`2024-05-01T12:00:00.123456789Z`,
/// offsets allowed), as Podman writes them in logs and health check results.
pub fn rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| s.get(from..to)?.parse::<i64>().ok();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = frac[..digits].chars().chain("00".chars()).take(3).collect();
        millis = ms.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hh = rest.get(1..3)?.parse::<i64>().ok()?;
            let mm = rest.get(4..6)?.parse::<i64>().ok()?;
            sign * (hh * 60 + mm)
        }
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(secs * 1_000 + millis)
}

/// Splits a log line `"<RFC 3339 time> <text>"` as Podman writes it with timestamps.
fn split_timestamp(line: &str) -> (Option<u64>, &str) {
    match line.split_once(' ') {
        Some((time, text)) => match rfc3339_millis(time) {
            Some(at) => (u64::try_from(at).ok(), text),
            None => (None, line),
        },
        None => match rfc3339_millis(line) {
            Some(at) => (u64::try_from(at).ok(), ""),
            None => (None, line),
        },
    }
}

/// Turns raw chunks of one stream into lines, keeping an unterminated tail for the next chunk.
fn push_lines(
    buf: &mut Vec<u8>,
    chunk: &[u8],
    stream: LogStream,
    source: &str,
    out: &mut Vec<LogLine>,
) {
    buf.extend_from_slice(chunk);
    while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
        let raw: Vec<u8> = buf.drain(..=pos).collect();
        let text = String::from_utf8_lossy(&raw[..raw.len() - 1]);
        let (at, line) = split_timestamp(text.trim_end_matches('\r'));
        out.push(LogLine {
            at,
            stream,
            source: Some(source.to_string()),
            line: line.to_string(),
            correlation: None,
        });
    }
}

impl PodmanEngine {
    pub(crate) async fn pod_logs(&self, handle: &Handle, opts: LogOptions) -> Result<Vec<LogLine>> {
        let data = InstanceData::from_handle(handle);
        let pods = self.podman.pods();
        let Some(info) =
            call_opt("pod inspect", API_TIMEOUT, pods.get(&data.pod).inspect()).await?
        else {
            return Err(Error::NotFound {
                engine: NAME.to_string(),
                instance: data.pod,
            });
        };
        let infra = info.infra_container_id.clone().unwrap_or_default();
        let containers = self.podman.containers();
        let mut lines = Vec::new();
        for member in info.containers.iter().flatten() {
            let (Some(id), Some(name)) = (member.id.as_deref(), member.name.as_deref()) else {
                continue;
            };
            if id == infra {
                continue;
            }
            let source = name.strip_prefix(&format!("{}-", data.pod)).unwrap_or(name);
            let mut builder = ContainerLogsOpts::builder()
                .stdout(true)
                .stderr(true)
                .timestamps(true);
            if let Some(n) = opts.tail {
                builder = builder.tail(n.to_string());
            }
            let log_opts = builder.build();
            let container = containers.get(id);
            let read = async {
                let mut stream = container.logs(&log_opts);
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let mut got = Vec::new();
                while let Some(chunk) = stream.next().await {
                    match chunk? {
                        TtyChunk::StdOut(b) => {
                            push_lines(&mut out, &b, LogStream::Stdout, source, &mut got)
                        }
                        TtyChunk::StdErr(b) => {
                            push_lines(&mut err, &b, LogStream::Stderr, source, &mut got)
                        }
                        TtyChunk::StdIn(_) => {}
                    }
                }
                push_lines(&mut out, b"\n", LogStream::Stdout, source, &mut got);
                push_lines(&mut err, b"\n", LogStream::Stderr, source, &mut got);
                got.retain(|l| !(l.line.is_empty() && l.at.is_none()));
                Ok::<_, podman_api::Error>(got)
            };
            // Init containers are removed once they ran: a member may be gone.
            if let Some(got) = call_opt("container logs", API_TIMEOUT, read).await? {
                lines.extend(got);
            }
        }
        lines.sort_by_key(|l| l.at.unwrap_or(0));
        if let Some(n) = opts.tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_become_epoch_millis() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_millis("2024-02-29T12:34:56.789123456Z"),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            rfc3339_millis("2024-02-29T13:34:56.7+01:00"),
            Some(1_709_210_096_700)
        );
        assert_eq!(rfc3339_millis("hello world"), None);
        assert_eq!(
            rfc3339_millis("0001-01-01T00:00:00Z").map(|v| v < 0),
            Some(true)
        );
    }

    #[test]
    fn chunks_become_timestamped_lines() {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        push_lines(
            &mut buf,
            b"2024-01-01T00:00:00Z hel",
            LogStream::Stdout,
            "web",
            &mut out,
        );
        assert!(out.is_empty());
        push_lines(
            &mut buf,
            b"lo\nplain line\n",
            LogStream::Stdout,
            "web",
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].line, "hello");
        assert_eq!(out[0].at, Some(1_704_067_200_000));
        assert_eq!(out[0].source.as_deref(), Some("web"));
        assert_eq!((out[1].at, out[1].line.as_str()), (None, "plain line"));
    }
}
