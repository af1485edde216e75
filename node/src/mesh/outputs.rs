//! `meshctl outputs`: the collected output files of a run-to-completion workload, read in
//! pieces from the node that ran it. A node serves only files its own job status lists as
//! collected (by their listed path, never a path the asker makes up), from where it keeps
//! them; any node forwards a request for another node's files to it.

use mesh_protocol::api::OutputChunk;
use mesh_protocol::wire::{Request, Response};
use mesh_protocol::WorkloadId;

use super::merge::unexpected;
use super::{Error, Mesh};

impl Mesh {
    /// Up to [`mesh_protocol::wire::MODULE_CHUNK_BYTES`] of output file `path` of `id` from `offset`, from this
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
        let (total, bytes) = super::modules::read_piece(location, offset)
            .await
            .map_err(|e| Error::internal(format!("cannot read output {path:?} of {id}: {e}")))?;
        Ok(OutputChunk {
            total,
            offset,
            bytes,
        })
    }
}
