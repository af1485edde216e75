//! `meshctl version`: this meshctl's version and git revision, and the version of the node it
//! talks to when one answers (`GET /health`; no node is no error).

use std::path::Path;
use std::time::Duration;

use mesh_protocol::api::Health;
use serde::Serialize;

use super::output::Format;
use crate::client::{Client, Target};
use crate::version::Info;

/// How long the node may take to answer; past it, it counts as not answering.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// What `meshctl version -o json` prints.
#[derive(Debug, Serialize)]
struct Versions {
    #[serde(flatten)]
    meshctl: Info,
    /// The node asked, if it answered.
    node: Option<NodeVersion>,
}

#[derive(Debug, Serialize)]
struct NodeVersion {
    peer: String,
    /// `0.1.0 (git 824efc1634b9)` as the node states it.
    version: String,
}

/// Prints the versions; fails only on a malformed `--node`.
pub async fn run(node: Option<&str>, token_file: Option<&Path>, fmt: Format) -> anyhow::Result<()> {
    let target = node
        .map(Target::parse)
        .transpose()?
        .unwrap_or_else(super::default_target);
    let asked = ask(target, token_file).await;
    let versions = Versions {
        meshctl: Info::current(),
        node: asked.as_ref().ok().map(|h| NodeVersion {
            peer: h.node.clone(),
            version: h.software_version.clone(),
        }),
    };
    match fmt {
        Format::Table => {
            println!("meshctl {}", crate::version::LONG);
            match asked {
                Ok(h) => println!("node    {} (peer {})", h.software_version, h.node),
                Err(e) => println!("node    not reached: {e:#}"),
            }
        }
        _ => super::output::print_value(fmt, &versions)?,
    }
    Ok(())
}

async fn ask(target: Target, token_file: Option<&Path>) -> anyhow::Result<Health> {
    let mut client = Client::new(target);
    if let Some(path) = token_file {
        client = client.with_token(&crate::local_api::Token::load(path)?);
    }
    tokio::time::timeout(NODE_TIMEOUT, client.get::<Health>("/health"))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {NODE_TIMEOUT:?}"))?
}
