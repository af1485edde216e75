#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! Fetching a module this node lacks: verified against its digest, bad providers skipped,
//! nothing unverified ever stored or run.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use mesh_engine_wasm::{Digest, FetchError, ModuleFetcher, ModuleStore, WasmEngine};
use mesh_runtime::{Engine, InstanceState};

/// Providers in a fixed order, each answering with its own bytes (or an error); records
/// which were asked.
#[derive(Debug, Default)]
struct Peers {
    order: Vec<String>,
    answers: HashMap<String, Result<Vec<u8>, String>>,
    asked: Mutex<Vec<String>>,
}

impl Peers {
    fn with(mut self, name: &str, answer: Result<Vec<u8>, String>) -> Self {
        self.order.push(name.to_string());
        self.answers.insert(name.to_string(), answer);
        self
    }
}

#[async_trait]
impl ModuleFetcher for Peers {
    async fn providers(&self, _digest: &Digest) -> Vec<String> {
        self.order.clone()
    }

    async fn download(&self, provider: &str, _digest: &Digest) -> Result<Vec<u8>, String> {
        self.asked.lock().unwrap().push(provider.to_string());
        self.answers[provider].clone()
    }
}

fn hello() -> (Vec<u8>, Digest) {
    let bytes = wat::parse_str(HELLO).unwrap();
    let digest = Digest::of(&bytes);
    (bytes, digest)
}

#[tokio::test]
async fn corrupt_and_partial_providers_are_skipped_and_the_verified_module_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, digest) = hello();
    let mut corrupt = bytes.clone();
    corrupt[bytes.len() / 2] ^= 0xff;
    let partial = bytes[..bytes.len() / 2].to_vec();
    let peers = Arc::new(
        Peers::default()
            .with("corrupt", Ok(corrupt))
            .with("partial", Ok(partial))
            .with("gone", Err("connection refused".into()))
            .with("good", Ok(bytes.clone())),
    );
    let engine = WasmEngine::new(dir.path(), runner())
        .unwrap()
        .with_fetcher(peers.clone());
    assert!(!engine.store().has(&digest));

    let spec = function("fetched", &digest, Opts::default());
    let handle = deploy(&engine, &spec).await;
    assert_eq!(
        *peers.asked.lock().unwrap(),
        ["corrupt", "partial", "gone", "good"]
    );
    assert_eq!(
        std::fs::read(engine.store().get(&digest).unwrap()).unwrap(),
        bytes
    );
    assert_eq!(
        wait_end(&engine, &handle).await.state,
        InstanceState::Exited { code: 0 }
    );
    // Nothing but the verified module was left in the store.
    assert_eq!(engine.store().list().unwrap(), vec![digest]);
}

#[tokio::test]
async fn fetch_fails_with_every_reason_when_no_provider_has_good_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, digest) = hello();
    let store = ModuleStore::open(dir.path()).unwrap();
    let peers = Peers::default()
        .with("a", Ok(b"not wasm".to_vec()))
        .with("b", Err("timed out".into()));
    let err = mesh_engine_wasm::fetch::fetch_into(&store, &peers, &digest)
        .await
        .unwrap_err();
    let FetchError::AllFailed { failures, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(failures.len(), 2);
    let text = err.to_string();
    assert!(
        text.contains("a: sent 8 bytes that fail verification"),
        "{text}"
    );
    assert!(text.contains("b: timed out"), "{text}");
    assert!(store.list().unwrap().is_empty());

    let none = Peers::default();
    let err = mesh_engine_wasm::fetch::fetch_into(&store, &none, &digest)
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::NoProvider(digest));

    // Through the engine, Fetch fails with that reason and nothing runs.
    let engine = WasmEngine::new(dir.path(), runner())
        .unwrap()
        .with_fetcher(Arc::new(
            Peers::default().with("a", Ok(bytes[1..].to_vec())),
        ));
    let spec = function("unfetchable", &digest, Opts::default());
    let err = engine.fetch(&spec).await.unwrap_err().to_string();
    assert!(err.contains("could not be fetched"), "{err}");
}
