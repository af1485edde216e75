//! Logs of a pod instance: every container's stdout and stderr, merged by time, each line
//! tagged with its container's name (without the pod prefix).

use futures::StreamExt as _;
use mesh_protocol::api::{LogLine, LogStream};
use mesh_runtime::error::Result;
use mesh_runtime::{Error, Handle, LogOptions};
use podman_api::conn::TtyChunk;
use podman_api::opts::ContainerLogsOpts;

use mesh_runtime::time::split_timestamp;

use crate::api::{call_opt, API_TIMEOUT};
use crate::handle::InstanceData;
use crate::{PodmanEngine, NAME};

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
