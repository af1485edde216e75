//! This node's own settings, kept across restarts: whether it is cordoned (`meshctl drain`
//! until `meshctl uncordon`).

use super::{Result, Store};

const CORDONED: &[u8] = b"cordoned";

impl Store {
    /// Whether this node takes no new replicas.
    pub fn cordoned(&self) -> bool {
        matches!(self.node_state.get(CORDONED), Ok(Some(v)) if v.as_ref() == [1])
    }

    /// Cordons (or uncordons) this node; flushed, so a restart keeps it.
    pub fn set_cordoned(&self, cordoned: bool) -> Result<()> {
        self.node_state.insert(CORDONED, &[u8::from(cordoned)])?;
        self.flush()
    }
}
