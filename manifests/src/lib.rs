//! Manifests → [`WorkloadSpec`]s. Kubernetes YAML and JSON (Pod, Deployment, Job, DaemonSet,
//! with ConfigMaps and Secrets beside them), Docker Compose files and `beemesh.io/v1`
//! objects (Function, VirtualMachine) all become the one normalised, sealed spec that
//! engines, the store and the wire use.
//!
//! Everything here is a pure function of the input bytes and [`ParseOptions`]: no file
//! system, no environment, no clock. Malformed input gets one located, human [`Error`]
//! (`spec.containers[0].image: missing`, `line 12, column 3: duplicate key "selector"`),
//! never a panic; input size, document count and alias expansion are bounded.
//! Fields that are recognised but not honoured become `WorkloadSpec::warnings`.
//! `docs/manifests.md` is the support matrix.
//!
//! # Layout
//!
//! - [`error`]: [`Error`] and [`ErrorKind`].
//! - `yaml`, `yaml_value`, `yaml_tags`: bytes → documents (limits, JSON or YAML, duplicate
//!   keys, merge keys, alias budget, the Compose tags `!reset` and `!override`).
//! - `node`: walking values with field paths; warnings.
//! - `detect`: structural format detection ([`detect_format`]) and the Kubernetes kind table.
//! - `meta`: metadata and annotations shared by Kubernetes and beemesh.io/v1.
//! - `k8s`, `k8s_container`, `k8s_volumes`, `k8s_config`: Kubernetes workloads, containers,
//!   volumes, ConfigMaps and Secrets.
//! - `compose`, `compose_service`, `compose_fields`, `compose_mounts`, `compose_deploy`,
//!   `compose_syntax`, `compose_interp`, `compose_extends`, `compose_merge`,
//!   `compose_depends`: Compose files.
//! - `beemesh`: beemesh.io/v1 Function and VirtualMachine.
//! - [`quantity`]: CPU and memory amounts.
//! - `names`: name rules ([`normalize_name`]).

use std::collections::{BTreeMap, BTreeSet};

use mesh_protocol::spec::{ConfigObject, WorkloadSpec};

mod beemesh;
mod compose;
mod compose_depends;
mod compose_deploy;
mod compose_extends;
mod compose_fields;
mod compose_interp;
mod compose_merge;
mod compose_mounts;
mod compose_service;
mod compose_syntax;
mod detect;
pub mod error;
mod host_access;
mod k8s;
mod k8s_config;
mod k8s_container;
mod k8s_volumes;
mod meta;
mod names;
mod node;
pub mod quantity;
mod yaml;
mod yaml_tags;
mod yaml_value;

pub use compose_interp::referenced_env_vars;
pub use detect::detect_format;
pub use error::{Error, ErrorKind, SUPPORTED_KINDS};
pub use host_access::normalize_capability;
pub use names::normalize_name;
pub use yaml::{EXPANSION_ALLOWANCE, EXPANSION_FACTOR};

use detect::{classify, detect, Class, Detected};
use node::{describe, MapNode, Node, Path};

/// Largest manifest accepted, in bytes (1 MiB).
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Most non-empty documents in one manifest.
pub const MAX_DOCUMENTS: usize = 64;

/// Bounds applied before and while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Input size limit; larger input is refused before parsing.
    pub max_bytes: usize,
    /// Most non-empty documents in one stream.
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: MAX_MANIFEST_BYTES,
            max_documents: MAX_DOCUMENTS,
        }
    }
}

/// What the caller knows that the manifest does not say.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// Name of a Compose workload whose file has no top-level `name:` (the CLI passes the
    /// file stem through [`normalize_name`]).
    pub default_name: Option<String>,
    /// Variables for Compose interpolation and valueless `environment` entries
    /// (see [`referenced_env_vars`]).
    pub env: BTreeMap<String, String>,
    pub limits: Limits,
}

/// Parses a manifest into sealed workloads, in document order.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Vec<WorkloadSpec>, Error> {
    let documents = yaml::load(input, &opts.limits)?;
    let several = documents.len() > 1;
    let mut items = Vec::new();
    for doc in documents {
        let index = doc.index;
        parse_document(doc.value, index, opts, &mut items).map_err(|e| {
            if several {
                e.in_document(index)
            } else {
                e
            }
        })?;
    }
    assemble(items, several)
}

/// One object of a file.
#[derive(Debug)]
enum Item {
    Workload(Box<WorkloadSpec>, usize),
    Config(ConfigObject, usize),
    /// A kind that is not a workload, kept for the warning (or the error when alone).
    Skipped {
        document: usize,
        what: String,
        refusal: error::Error,
    },
}

fn parse_document(
    value: serde_yaml::Value,
    index: usize,
    opts: &ParseOptions,
    items: &mut Vec<Item>,
) -> Result<(), Error> {
    let root = Node::new(&value, Path::root());
    let map = root.map().map_err(|_| {
        root.err(format!(
            "expected a mapping (a Kubernetes object, a Compose file or a beemesh.io/v1 \
             object), found {}",
            describe(root.value)
        ))
    })?;
    let detected = detect(&map)?;
    if detected != Detected::Compose {
        // `!reset` and `!override` only have a meaning in Compose files.
        if let Some((path, tag)) = yaml_tags::first_tag(&value, &Path::root()) {
            return Err(path.err(format!("YAML tag {tag} is only supported in Compose files")));
        }
    }
    let spec = match detected {
        Detected::Compose => compose::parse(value, opts)?,
        Detected::Beemesh { api_version, kind } => beemesh::parse(&map, api_version, kind)?,
        Detected::Kubernetes { api_version, kind } => {
            return kubernetes_object(&map, api_version, kind, index, items, true);
        }
    };
    items.push(Item::Workload(Box::new(spec), index));
    Ok(())
}

fn kubernetes_object(
    map: &MapNode<'_>,
    api_version: &str,
    kind: &str,
    index: usize,
    items: &mut Vec<Item>,
    top_level: bool,
) -> Result<(), Error> {
    match classify(api_version, kind) {
        Class::Workload(kind) => {
            let spec = k8s::parse_workload(map, kind)?;
            items.push(Item::Workload(Box::new(spec), index));
        }
        Class::Config(kind) => items.push(Item::Config(k8s_config::parse(map, kind)?, index)),
        Class::List if top_level => {
            for item in map.req("items")?.seq()? {
                let object = item.map()?;
                match detect(&object)? {
                    Detected::Kubernetes { api_version, kind } => {
                        kubernetes_object(&object, api_version, kind, index, items, false)?;
                    }
                    _ => return Err(item.err("a List holds Kubernetes objects")),
                }
            }
        }
        Class::List => return Err(map.path.err("a List cannot hold another List")),
        Class::Refused(error) => return Err(error),
        Class::NotWorkload { removed } => {
            let name = map.get("metadata").and_then(|m| {
                m.value
                    .get("name")
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
            });
            let what = match name {
                Some(name) => format!("{kind}/{name}"),
                None => kind.to_string(),
            };
            let refusal = removed.unwrap_or_else(|| {
                Error::new(ErrorKind::UnsupportedKind {
                    kind: kind.to_string(),
                    api_version: api_version.to_string(),
                    reason: "not a workload kind".to_string(),
                })
            });
            items.push(Item::Skipped {
                document: index,
                what,
                refusal,
            });
        }
    }
    Ok(())
}

/// Attaches ConfigMaps, Secrets and skip warnings to every workload and seals them.
fn assemble(items: Vec<Item>, several: bool) -> Result<Vec<WorkloadSpec>, Error> {
    let mut workloads = Vec::new();
    let mut configs: Vec<(ConfigObject, usize)> = Vec::new();
    let mut skipped = Vec::new();
    for item in items {
        match item {
            Item::Workload(spec, doc) => workloads.push((*spec, doc)),
            Item::Config(config, doc) => configs.push((config, doc)),
            Item::Skipped {
                document,
                what,
                refusal,
            } => skipped.push((document, what, refusal)),
        }
    }
    if workloads.is_empty() {
        if let ([(_, _, refusal)], []) = (skipped.as_slice(), configs.as_slice()) {
            if !several {
                return Err(refusal.clone());
            }
        }
        let mut found: Vec<String> = configs
            .iter()
            .map(|(c, _)| format!("{:?}/{} (only beside a workload)", c.kind, c.name))
            .collect();
        found.extend(
            skipped
                .iter()
                .map(|(_, what, refusal)| match removal_note(refusal) {
                    Some(note) => format!("{what} ({note})"),
                    None => what.clone(),
                }),
        );
        return Err(ErrorKind::NothingToDeploy { skipped: found }.into());
    }
    let doc_prefix = |doc: usize| {
        if several {
            format!("document {doc}: ")
        } else {
            String::new()
        }
    };
    let mut notes: Vec<String> = skipped
        .iter()
        .map(|(doc, what, refusal)| {
            let removed = removal_note(refusal)
                .map(|note| format!("; {note}"))
                .unwrap_or_default();
            let note = format!(
                "{}{what} skipped: not a workload kind (supported: {KUBERNETES_KINDS}){removed}",
                doc_prefix(*doc)
            );
            error::one_line(&note).into_owned()
        })
        .collect();
    notes.dedup();
    check_unique(&workloads, &configs)?;
    let config: Vec<ConfigObject> = configs.into_iter().map(|(c, _)| c).collect();
    Ok(workloads
        .into_iter()
        .map(|(mut spec, _)| {
            spec.config = config.clone();
            spec.warnings.extend(notes.iter().cloned());
            spec.seal()
        })
        .collect())
}

/// Kubernetes kinds the mesh reads, for warnings about skipped documents.
const KUBERNETES_KINDS: &str = "Pod, Deployment, Job, DaemonSet, ConfigMap, Secret";

/// `policy/v1beta1 was removed in Kubernetes 1.25: use policy/v1` for a removed API.
fn removal_note(refusal: &Error) -> Option<String> {
    match refusal.kind() {
        ErrorKind::RemovedApi {
            api_version,
            removed_in,
            replacement,
            ..
        } => Some(format!(
            "{api_version} was removed in Kubernetes {removed_in}: use {replacement}"
        )),
        _ => None,
    }
}

/// Two workloads (or two ConfigMaps/Secrets) with one id in one file is a mistake.
fn check_unique(
    workloads: &[(WorkloadSpec, usize)],
    configs: &[(ConfigObject, usize)],
) -> Result<(), Error> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (spec, doc) in workloads {
        if let Some(first) = seen.insert(spec.id().to_string(), *doc) {
            return Err(Error::invalid(
                "metadata.name",
                format!(
                    "workload {} is defined twice (documents {first} and {doc})",
                    spec.id()
                ),
            )
            .in_document(*doc));
        }
    }
    let mut seen_config = BTreeSet::new();
    for (config, doc) in configs {
        if !seen_config.insert((format!("{:?}", config.kind), config.name.clone())) {
            return Err(Error::invalid(
                "metadata.name",
                format!("{:?} {} is defined twice", config.kind, config.name),
            )
            .in_document(*doc));
        }
    }
    Ok(())
}
