//! Getting a module this node lacks from the peers that hold it. The node supplies a
//! [`ModuleFetcher`] (who provides a digest, and the bytes one of them sends); this module
//! decides what to trust: every download is verified against the digest by
//! [`ModuleStore::put_expected`] before it is stored, and a provider that sends a partial or
//! corrupt module is skipped for the next one.

use std::fmt;

use async_trait::async_trait;

use crate::digest::Digest;
use crate::store::{self, ModuleStore};

/// Where modules come from. Implemented by the node over the mesh (DHT providers and
/// request-response downloads); tests implement it with maps.
#[async_trait]
pub trait ModuleFetcher: Send + Sync + fmt::Debug + 'static {
    /// Peers that say they hold `digest`, best first (a peer id or any name
    /// [`ModuleFetcher::download`] understands).
    async fn providers(&self, digest: &Digest) -> Vec<String>;

    /// The bytes `provider` sends for `digest`, unverified.
    async fn download(&self, provider: &str, digest: &Digest) -> Result<Vec<u8>, String>;
}

/// What a fetch did: the provider it came from and those that failed, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub from: String,
    pub bytes: usize,
    pub skipped: Vec<(String, String)>,
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("module {0} is not on this node and no peer announces it")]
    NoProvider(Digest),
    #[error("module {digest} could not be fetched from any of its {} provider(s): {}", .failures.len(), describe(.failures))]
    AllFailed {
        digest: Digest,
        failures: Vec<(String, String)>,
    },
}

fn describe(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(p, e)| format!("{p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fetches `digest` into `store` from the first provider whose bytes verify. Nothing that
/// fails verification is stored.
pub async fn fetch_into(
    store: &ModuleStore,
    fetcher: &dyn ModuleFetcher,
    digest: &Digest,
) -> Result<Fetched, FetchError> {
    let providers = fetcher.providers(digest).await;
    if providers.is_empty() {
        return Err(FetchError::NoProvider(*digest));
    }
    let mut skipped = Vec::new();
    for provider in providers {
        let bytes = match fetcher.download(&provider, digest).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(module = %digest, %provider, error = %e, "module download failed; trying the next provider");
                skipped.push((provider, e));
                continue;
            }
        };
        let store = store.clone();
        let digest_owned = *digest;
        let len = bytes.len();
        let stored =
            tokio::task::spawn_blocking(move || store.put_expected(&digest_owned, &bytes)).await;
        match stored {
            Ok(Ok(())) => {
                return Ok(Fetched {
                    from: provider,
                    bytes: len,
                    skipped,
                })
            }
            Ok(Err(e @ store::Error::Mismatch { .. })) => {
                tracing::warn!(module = %digest, %provider, error = %e, "provider sent a corrupt module; trying the next provider");
                skipped.push((
                    provider,
                    format!("sent {len} bytes that fail verification: {e}"),
                ));
            }
            Ok(Err(e)) => skipped.push((provider, e.to_string())),
            Err(e) => skipped.push((provider, format!("store task failed: {e}"))),
        }
    }
    Err(FetchError::AllFailed {
        digest: *digest,
        failures: skipped,
    })
}
