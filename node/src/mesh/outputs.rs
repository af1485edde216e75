//! `meshctl outputs`: the collected output files of a run-to-completion workload, read in
//! pieces from the node that ran it. A node serves only files its own job status lists as
//! collected (by their listed path, never a path the asker makes up), from where it keeps
//! them; any node forwards a request for another node's files to it.

use std::io::{Read, Seek, SeekFrom};

use mesh_protocol::api::OutputChunk;
use mesh_protocol::wire::{Request, Response, MODULE_CHUNK_BYTES};
use mesh_protocol::WorkloadId;

use super::merge::unexpected;
use super::{Error, Mesh};

impl Mesh {
    /// Up to [`MODULE_CHUNK_BYTES`] of output file `path` of `id` from `offset`, from this
    /// node or from `node`.
    pub async fn output_chunk(
        &self,
        id: &WorkloadId,
        node: Option<&str>,
        path: &str,
        offset: u64,
    ) -> Result<OutputChunk, Error> {
        let target = self.node_named(node)?;
        if target != self.peer_id() {
            let request = Request::Output {
                id: id.clone(),
                node: None,
                path: path.to_string(),
                offset,
            };
            return match self.ask(target, request).await? {
                Response::Output(chunk) => Ok(chunk),
                _ => Err(unexpected(&target)),
            };
        }
        let view = self.node().view(id, false)?;
        let location = view
            .replicas
            .iter()
            .filter_map(|r| r.job.as_ref())
            .flat_map(|j| &j.outputs)
            .find(|a| a.path == path)
            .map(|a| std::path::PathBuf::from(&a.location))
            .ok_or_else(|| {
                Error::Absent(format!(
                    "{id} has no collected output {path:?} on this node"
                ))
            })?;
        let read = move || -> std::io::Result<OutputChunk> {
            let mut file = std::fs::File::open(&location)?;
            let total = file.metadata()?.len();
            file.seek(SeekFrom::Start(offset.min(total)))?;
            let mut bytes = Vec::new();
            file.take(MODULE_CHUNK_BYTES as u64)
                .read_to_end(&mut bytes)?;
            Ok(OutputChunk {
                total,
                offset,
                bytes,
            })
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| Error::internal(format!("output read task: {e}")))?
            .map_err(|e| Error::internal(format!("cannot read output {path:?} of {id}: {e}")))
    }
}
