//! Trust: which signatures this node accepts, for what, and with which host access.
//!
//! Records are signed by their submitter (see [`crate::records`]); here a node decides whether
//! it accepts that signer for that workload. Every record, whichever way it comes (an apply, a
//! peer's replica request, gossip, the DHT, a delete), passes [`Trust::authorise`] before the
//! record book keeps it, so a refused record is neither stored, forwarded nor run. A replica
//! also passes [`Trust::check_spec`] (host access, engines, caps) before anything is written
//! or started, and requests from clients pass [`Trust::check_fresh`] (replays).
//!
//! Where the policy comes from ([`Source`]):
//! - a trust file (`meshd --trust-file`, see [`file`]), reloaded on SIGHUP and when it changes;
//! - by default, the key of the user who runs `meshd` (the key `meshctl` signs with), as
//!   admin of every namespace with all host access: one machine works out of the box, and
//!   nothing signed elsewhere runs on it;
//! - `--trust-any`: every valid signature, for development and testnets.
//!
//! The node's own key (it signs for local API clients that sign nothing) is trusted as admin
//! of every namespace without host access, unless the trust file lists it.

// A refusal names the keys and rules involved, which makes it large; it is the rare path,
// and the errors that carry it further box it (`service::Error::Forbidden`).
#![allow(clippy::result_large_err)]

pub mod file;
mod host;
mod replay;
pub mod watch;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use libp2p::PeerId;
use mesh_protocol::{WorkloadId, WorkloadSpec};
use mesh_provider::workload::Verified;
use serde::Deserialize;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Create workloads, and change or delete those it signed.
    Deploy,
    /// Also change or delete workloads others signed.
    Admin,
}

/// Host access a key is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostGrant {
    /// hostPath volumes and bind mounts under these prefixes only (`/` for any).
    pub host_paths: Vec<String>,
    pub network: bool,
    pub pid: bool,
    pub ipc: bool,
    pub privileged: bool,
    /// Added capabilities (upper case, no `CAP_`), or `ALL`.
    pub capabilities: BTreeSet<String>,
    /// Host devices by path, or `*`.
    pub devices: Vec<String>,
    pub process_engine: bool,
}

impl HostGrant {
    /// Everything (the owner's key when there is no trust file).
    pub fn all() -> Self {
        Self {
            host_paths: vec!["/".into()],
            network: true,
            pid: true,
            ipc: true,
            privileged: true,
            capabilities: ["ALL".to_string()].into(),
            devices: vec!["*".into()],
            process_engine: true,
        }
    }
}

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its name in refusals.
    pub name: String,
    /// Where it is in the trust file (`keys[2]`), or what made it trusted.
    pub entry: String,
    pub roles: BTreeSet<Role>,
    /// Namespaces it may use; `*` for all.
    pub namespaces: Vec<String>,
    pub host: HostGrant,
}

impl Grant {
    fn admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    fn may_use(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

/// A node's trust policy, as loaded.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `--trust-any`: every valid signature, all host access.
    pub any: bool,
    pub keys: HashMap<PeerId, Grant>,
    /// Engines this node may use (on top of `Config::policy`).
    pub engines: mesh_runtime::select::Policy,
    pub max_cpu_millis: Option<u64>,
    pub max_memory_bytes: Option<u64>,
    /// How far a request's `issued_at` may be from this node's clock.
    pub max_skew: Duration,
}

impl Policy {
    /// Trusts every valid signature (`--trust-any`).
    pub fn any() -> Self {
        Self {
            any: true,
            keys: HashMap::new(),
            engines: Default::default(),
            max_cpu_millis: None,
            max_memory_bytes: None,
            max_skew: file::DEFAULT_MAX_SKEW,
        }
    }

    /// Trusts one key, as admin of every namespace with all host access (the key of the
    /// user who runs `meshd`, when there is no trust file).
    pub fn owner(key: PeerId) -> Self {
        let mut p = Self::any();
        p.any = false;
        p.keys.insert(
            key,
            Grant {
                name: "the owner of this node".into(),
                entry: "the key of the user running meshd".into(),
                roles: [Role::Deploy, Role::Admin].into(),
                namespaces: vec!["*".into()],
                host: HostGrant::all(),
            },
        );
        p
    }
}

/// Where a node's policy comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A fixed policy (tests; the owner key; `--trust-any`).
    Fixed(Policy),
    /// A trust file, reloaded on SIGHUP and when it changes.
    File(PathBuf),
}

/// Why a record or a workload was refused. Each message names the key and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "key {key} is not trusted by this node: add it to the node's trust file (keys[].key), \
         or start meshd with --trust-any for development"
    )]
    Untrusted { key: PeerId },
    #[error(
        "key {key} ({name}) may not use namespace {namespace}: the trust file's {entry}.namespaces \
         lists {allowed}"
    )]
    Namespace {
        key: PeerId,
        name: String,
        entry: String,
        namespace: String,
        allowed: String,
    },
    #[error(
        "{id} was signed by {owner}; key {key} ({name}) may change or delete it only with the \
         admin role ({entry}.roles)"
    )]
    NotOwner {
        id: WorkloadId,
        owner: PeerId,
        key: PeerId,
        name: String,
        entry: String,
    },
    #[error("{id}: key {key} ({name}) is not granted {what} ({rule})")]
    HostAccess {
        id: WorkloadId,
        key: PeerId,
        name: String,
        what: String,
        rule: String,
    },
    #[error("{id}: {message}")]
    Node { id: WorkloadId, message: String },
    #[error("replayed request: {0}")]
    Replay(String),
    #[error(
        "key {key} may not {what}: only a key with the admin role in this node's trust file \
         (keys[].roles) may"
    )]
    NotAdmin { key: PeerId, what: String },
    #[error("{id}: rollback to revision {to} refused: {why}")]
    Rollback {
        id: WorkloadId,
        to: u64,
        why: String,
    },
}

/// A node's trust: its policy (swapped whole on reload), its own key, and the nonces of
/// recent requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Trust {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policy: RwLock<Arc<Policy>>,
    source: Source,
    node_key: PeerId,
    replay: replay::Guard,
}

impl Trust {
    /// Loads the policy from `source`; a trust file that cannot be read or parsed is an error
    /// (a node never starts trusting more than its operator wrote).
    pub fn new(source: Source, node_key: PeerId) -> anyhow::Result<Self> {
        let policy = match &source {
            Source::Fixed(p) => p.clone(),
            Source::File(path) => file::load(path)?,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                policy: RwLock::new(Arc::new(policy)),
                source,
                node_key,
                replay: replay::Guard::default(),
            }),
        })
    }

    /// Trusts every valid signature (tests, `--trust-any`).
    pub fn any(node_key: PeerId) -> Self {
        Self::new(Source::Fixed(Policy::any()), node_key).expect("a fixed policy always loads")
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner
            .policy
            .read()
            .expect("trust lock is never poisoned")
            .clone()
    }

    /// Whether this node accepts every valid signature (`--trust-any`).
    pub fn is_any(&self) -> bool {
        self.policy().any
    }

    /// What the node record says of this policy: `any`, `file` or `owner`.
    pub fn mode(&self) -> &'static str {
        match &self.inner.source {
            _ if self.is_any() => "any",
            Source::File(_) => "file",
            Source::Fixed(_) => "owner",
        }
    }

    /// The trust file, when the policy comes from one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match &self.inner.source {
            Source::File(p) => Some(p),
            Source::Fixed(_) => None,
        }
    }

    /// Reads the trust file again. On an error the policy in force stays (and the error is
    /// returned for the log): a broken edit never opens the node up, nor locks its owner out.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let Source::File(path) = &self.inner.source else {
            return Ok(false);
        };
        let policy = file::load(path)?;
        *self
            .inner
            .policy
            .write()
            .expect("trust lock is never poisoned") = Arc::new(policy);
        Ok(true)
    }

    /// The grant of `key`: from the policy, or this node's own key (admin, no host access).
    fn grant(&self, policy: &Policy, key: &PeerId) -> Option<Grant> {
        if let Some(g) = policy.keys.get(key) {
            return Some(g.clone());
        }
        (*key == self.inner.node_key).then(|| Grant {
            name: "this node".into(),
            entry: "this node's own key".into(),
            roles: [Role::Deploy, Role::Admin].into(),
            namespaces: vec!["*".into()],
            host: HostGrant::default(),
        })
    }

    /// Whether this node accepts record `v` given the record it holds of the same workload:
    /// the signer is trusted, in a namespace it may use, and, when it changes or deletes a
    /// workload someone else signed, an admin. A rollback must name a revision whose content
    /// this node knows to be what it brings back (`known(revision)` gives that revision's
    /// spec version, when this node kept it).
    pub fn authorise(
        &self,
        v: &Verified,
        held: Option<&Verified>,
        known: impl Fn(u64) -> Option<String>,
    ) -> Result<(), Refusal> {
        if let Some(to) = v.record.rollback_to {
            rollback_check(v, held, to, Some(&known))?;
        }
        self.check_signer(v, held)
    }

    /// [`Trust::authorise`] for a store that keeps no earlier revisions (the DHT): a rollback
    /// must still name an earlier revision, but whether its content is that revision's is for
    /// the nodes' books, which keep them.
    pub fn authorise_without_history(
        &self,
        v: &Verified,
        held: Option<&Verified>,
    ) -> Result<(), Refusal> {
        if let Some(to) = v.record.rollback_to {
            rollback_check(v, held, to, None)?;
        }
        self.check_signer(v, held)
    }

    /// The signer: trusted, in a namespace it may use, and an admin to change or delete a
    /// live workload another key signed.
    fn check_signer(&self, v: &Verified, held: Option<&Verified>) -> Result<(), Refusal> {
        let policy = self.policy();
        let id = &v.record.id;
        if policy.any {
            return Ok(());
        }
        let Some(grant) = self.grant(&policy, &v.signer) else {
            return Err(Refusal::Untrusted { key: v.signer });
        };
        if !grant.may_use(&id.namespace) {
            return Err(Refusal::Namespace {
                key: v.signer,
                name: grant.name.clone(),
                entry: grant.entry.clone(),
                namespace: id.namespace.clone(),
                allowed: grant.namespaces.join(", "),
            });
        }
        if let Some(h) = held.filter(|h| !h.record.tombstone && h.signer != v.signer) {
            if !grant.admin() {
                return Err(Refusal::NotOwner {
                    id: id.clone(),
                    owner: h.signer,
                    key: v.signer,
                    name: grant.name,
                    entry: grant.entry,
                });
            }
        }
        Ok(())
    }

    /// Whether this node may run `spec` for `signer`: host access granted, engines allowed,
    /// within the node's caps.
    pub fn check_spec(&self, spec: &WorkloadSpec, signer: &PeerId) -> Result<(), Refusal> {
        let policy = self.policy();
        if policy.any {
            return host::check_node(spec, &policy);
        }
        let grant = self
            .grant(&policy, signer)
            .ok_or(Refusal::Untrusted { key: *signer })?;
        host::check_grant(spec, signer, &grant)?;
        host::check_node(spec, &policy)
    }

    /// Whether `key` may give this node an operator's command (`what`, e.g. `drain this
    /// node`): an admin, or anyone under `--trust-any`.
    pub fn authorise_admin(&self, key: &PeerId, what: &str) -> Result<(), Refusal> {
        let policy = self.policy();
        if policy.any {
            return Ok(());
        }
        match self.grant(&policy, key) {
            Some(g) if g.admin() => Ok(()),
            Some(_) => Err(Refusal::NotAdmin {
                key: *key,
                what: what.to_string(),
            }),
            None => Err(Refusal::Untrusted { key: *key }),
        }
    }

    /// Whether a signed operator's command is fresh (see [`Trust::check_fresh`]).
    pub fn check_fresh_command(
        &self,
        what: &str,
        nonce: &str,
        issued_at: mesh_protocol::UnixMillis,
        now: mesh_protocol::UnixMillis,
    ) -> Result<(), Refusal> {
        let skew = self.policy().max_skew;
        self.inner
            .replay
            .check_request(what, nonce, issued_at, now, skew)
    }

    /// Whether a client's request with record `v` is fresh: issued within the allowed skew of
    /// this node's clock and with a nonce not seen before.
    pub fn check_fresh(&self, v: &Verified, now: mesh_protocol::UnixMillis) -> Result<(), Refusal> {
        let skew = self.policy().max_skew;
        self.inner.replay.check(&v.record, now, skew)
    }
}

fn rollback_check(
    v: &Verified,
    held: Option<&Verified>,
    to: u64,
    known: Option<&dyn Fn(u64) -> Option<String>>,
) -> Result<(), Refusal> {
    let refuse = |why: String| Refusal::Rollback {
        id: v.record.id.clone(),
        to,
        why,
    };
    if to >= v.record.revision {
        return Err(refuse(format!(
            "a rollback brings back an earlier revision, and this is revision {}",
            v.record.revision
        )));
    }
    // A node that never held the workload has nothing to roll back from; a store without
    // history leaves the content to those that have one.
    let (Some(known), Some(_)) = (known, held) else {
        return Ok(());
    };
    match known(to) {
        None => Err(refuse("this node does not know that revision".into())),
        Some(version) if version != v.record.spec_version => Err(refuse(format!(
            "its content is {version}, and the rollback brings {}",
            v.record.spec_version
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
