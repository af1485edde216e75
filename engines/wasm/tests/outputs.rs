//! A run-to-completion Function's declared outputs are collected from its `/scratch`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use mesh_runtime::{Engine, Error, InstanceState};

/// Opens `/scratch/result.txt` (the first preopened directory is fd 3), writes `42\n` into
/// it and exits 0; a failing `path_open` exits 100 + its errno.
const WRITE_RESULT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "result.txt")
  (data (i32.const 200) "42\n")
  (func (export "_start")
    (local $err i32)
    ;; O_CREAT | O_TRUNC, every right
    (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 10)
      (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
    (if (local.get $err) (then (call $exit (i32.add (i32.const 100) (local.get $err)))))
    (i32.store (i32.const 256) (i32.const 200))
    (i32.store (i32.const 260) (i32.const 3))
    (drop (call $fd_write (i32.load (i32.const 16)) (i32.const 256) (i32.const 1) (i32.const 264)))))
"#;

#[tokio::test]
async fn outputs_are_collected_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let digest = put(&engine, WRITE_RESULT);
    let handle = deploy(&engine, &function("writer", &digest, Opts::default())).await;
    let st = wait_end(&engine, &handle).await;
    assert_eq!(st.state, InstanceState::Exited { code: 0 }, "{st:?}");

    let dest = dir.path().join("collected");
    std::fs::create_dir_all(&dest).unwrap();
    let files = engine
        .collect(&handle, &["result.txt".to_string()], &dest)
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!((files[0].path.as_str(), files[0].size), ("result.txt", 3));
    assert_eq!(
        std::fs::read_to_string(dest.join("result.txt")).unwrap(),
        "42\n"
    );

    let missing = engine
        .collect(&handle, &["other.txt".to_string()], &dest)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::Output(_)), "{missing:?}");

    engine.remove(&handle).await.unwrap();
    assert!(matches!(
        engine
            .collect(&handle, &["result.txt".to_string()], &dest)
            .await,
        Err(Error::NotFound { .. })
    ));
}
