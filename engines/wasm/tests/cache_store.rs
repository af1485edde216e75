#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
//! The content-addressed module store and the compile cache.

mod common;

use std::fs;

use common::*;
use mesh_engine_wasm::store::{Error as StoreError, ModuleStore};
use mesh_engine_wasm::Digest;
use mesh_runtime::{Engine, InstanceState};

/// The second start of a module loads it from the compile cache (reported `cached`, and
/// faster than the first compile), and the cache survives a new engine value.
#[tokio::test]
async fn second_start_uses_the_compile_cache_across_engine_values() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine(dir.path());
    let digest = put(&first, HELLO);
    let spec = function("cached", &digest, Opts::default());

    let cold = deploy(&first, &spec).await;
    assert_eq!(
        wait_end(&first, &cold).await.state,
        InstanceState::Exited { code: 0 }
    );
    let cold_info = first.start_info(&cold).unwrap();
    assert!(!cold_info.cached, "{cold_info:?}");
    let files: Vec<_> = fs::read_dir(first.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "cwasm"));

    let warm = deploy(&first, &spec).await;
    assert_eq!(
        wait_end(&first, &warm).await.state,
        InstanceState::Exited { code: 0 }
    );
    let warm_info = first.start_info(&warm).unwrap();
    assert!(warm_info.cached, "{warm_info:?}");
    assert!(
        warm_info.compile_ms < cold_info.compile_ms,
        "cached load {warm_info:?} not faster than compile {cold_info:?}"
    );
    let st = first.status(&warm).await.unwrap();
    assert!(
        st.detail.contains("compile cache") || matches!(st.state, InstanceState::Exited { .. }),
        "{st:?}"
    );
    drop(first);

    let second = engine(dir.path());
    let again = deploy(&second, &spec).await;
    assert_eq!(
        wait_end(&second, &again).await.state,
        InstanceState::Exited { code: 0 }
    );
    assert!(second.start_info(&again).unwrap().cached);
    // A recovered (finished) instance still reports how its module was obtained.
    assert!(second.start_info(&cold).is_some_and(|i| !i.cached));
}

/// A corrupt cache file is dropped and the module compiled again.
#[tokio::test]
async fn corrupt_cache_file_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, HELLO);
    let spec = function("recompile", &digest, Opts::default());
    let h = deploy(&engine, &spec).await;
    wait_end(&engine, &h).await;
    for entry in fs::read_dir(engine.cache_dir()).unwrap() {
        fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let h = deploy(&engine, &spec).await;
    assert_eq!(
        wait_end(&engine, &h).await.state,
        InstanceState::Exited { code: 0 }
    );
    assert!(!engine.start_info(&h).unwrap().cached);
}

/// put/get/has/list: a module is stored under the SHA-256 of its bytes.
#[test]
fn store_puts_and_gets_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModuleStore::open(dir.path()).unwrap();
    let bytes = wat::parse_str(HELLO).unwrap();
    let d = store.put(&bytes).unwrap();
    assert_eq!(d, Digest::of(&bytes));
    let path = store.get(&d).unwrap();
    assert_eq!(path, dir.path().join("modules/sha256").join(d.hex()));
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(store.has(&d));
    assert_eq!(store.put(&bytes).unwrap(), d, "idempotent");
    assert_eq!(store.list().unwrap(), vec![d]);
    assert_eq!(store.verify(&d).unwrap(), path);
    let other = Digest::of(b"other");
    assert!(store.get(&other).is_none());
    assert!(matches!(store.verify(&other), Err(StoreError::Missing(_))));
}

/// Bytes that do not match the expected digest (a partial or forged download) are refused
/// and leave nothing behind, not even a temporary file.
#[test]
fn digest_mismatch_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModuleStore::open(dir.path()).unwrap();
    let bytes = wat::parse_str(HELLO).unwrap();
    let expected = Digest::of(&bytes);
    let partial = &bytes[..bytes.len() / 2];
    let err = store.put_expected(&expected, partial).unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains(&expected.to_string()), "{err}");
    assert!(!store.has(&expected));
    assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
    store.put_expected(&expected, &bytes).unwrap();
    assert!(store.has(&expected));
}

/// A stored file whose bytes changed is detected by verify and deleted; prepare refuses
/// to run it.
#[tokio::test]
async fn corrupt_module_is_detected_deleted_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, HELLO);
    let path = engine.store().get(&digest).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let spec = function("corrupt", &digest, Opts::default());
    engine.fetch(&spec).await.unwrap();
    let err = engine.prepare(&spec).await.unwrap_err().to_string();
    assert!(err.contains("corrupt") && err.contains("deleted"), "{err}");
    assert!(!path.exists());
    let err = engine.fetch(&spec).await.unwrap_err().to_string();
    assert!(err.contains("is not on this node"), "{err}");

    // The store's own verify reports it the same way.
    let d2 = engine.store().put(b"\0asm\x01\0\0\0").unwrap();
    fs::write(engine.store().get(&d2).unwrap(), b"tampered").unwrap();
    assert!(matches!(
        engine.store().verify(&d2),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(!engine.store().has(&d2));
}
