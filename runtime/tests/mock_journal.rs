//! The mock engine's journal: what survives a restart of the engine, a line cut short by a
//! crash, a line that does not parse, the layout before the journal, and compaction.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::io::Write;
use std::path::Path;

use mesh_protocol::annotations as ann;
use mesh_runtime::mock::{MockEngine, MockInstance, MockRunState};
use mesh_runtime::Engine;
use support::{ctx, spec};

fn sorted(mut v: Vec<MockInstance>) -> Vec<MockInstance> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn journal_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("instances.jsonl"))
        .unwrap()
        .lines()
        .count()
}

/// Installs workloads `a` and `b` on an engine with state directory `dir`, then drops the
/// engine; returns their instance ids.
async fn install_two(dir: &Path) -> (String, String) {
    let mock = MockEngine::with_state_dir(dir).unwrap();
    let a = mock.install(&spec("a", &[]), &ctx()).await.unwrap();
    let b = mock.install(&spec("b", &[]), &ctx()).await.unwrap();
    (a.instance, b.instance)
}

/// Installs, starts, stops and removals all come back, exactly, in a new engine on the same
/// directory; so do the start counts behind `mock-exit-codes`.
#[tokio::test]
async fn every_change_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let codes = spec("codes", &[(ann::MOCK_EXIT_CODES, "3,0")]);
    let before = {
        let mock = MockEngine::with_state_dir(dir.path()).unwrap();
        let kept = mock.install(&spec("kept", &[]), &ctx()).await.unwrap();
        mock.start(&kept).await.unwrap();
        let stopped = mock.install(&spec("stopped", &[]), &ctx()).await.unwrap();
        mock.start(&stopped).await.unwrap();
        mock.stop(&stopped, std::time::Duration::ZERO)
            .await
            .unwrap();
        let gone = mock.install(&spec("gone", &[]), &ctx()).await.unwrap();
        mock.remove(&gone).await.unwrap();
        let first = mock.install(&codes, &ctx()).await.unwrap();
        mock.start(&first).await.unwrap();
        assert_eq!(mock.instance(&first.instance).unwrap().exit_code, Some(3));
        mock.instances()
    };
    assert_eq!(before.len(), 3);
    let mock = MockEngine::with_state_dir(dir.path()).unwrap();
    assert_eq!(sorted(mock.instances()), sorted(before.clone()));
    assert_eq!(
        sorted(MockEngine::stored_instances(dir.path()).unwrap()),
        sorted(before)
    );
    let states: Vec<MockRunState> = sorted(mock.instances()).iter().map(|i| i.state).collect();
    assert_eq!(
        states,
        [
            MockRunState::Running,
            MockRunState::Running,
            MockRunState::Stopped
        ]
    );
    // The second start of the same version follows the list on from the first.
    let second = mock.install(&codes, &ctx()).await.unwrap();
    mock.start(&second).await.unwrap();
    assert_eq!(mock.instance(&second.instance).unwrap().exit_code, Some(0));
}

/// A crash in the middle of a write leaves the last line cut short: it is ignored, and every
/// line before it counts. A line that does not parse in the middle is skipped, not fatal.
#[tokio::test]
async fn a_torn_last_line_and_a_garbled_one_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = install_two(dir.path()).await;
    let path = dir.path().join("instances.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"put\": this is not json}\n").unwrap();
    f.write_all(format!("{{\"forget\":\"{a}\"}}\n").as_bytes())
        .unwrap();
    f.write_all(format!("{{\"forget\":\"{b}").as_bytes())
        .unwrap();
    drop(f);

    let mock = MockEngine::with_state_dir(dir.path()).unwrap();
    let ids: Vec<String> = mock.instances().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, [b], "a forgotten, b's torn removal ignored");
    // Opening compacted the journal to the live state: one line.
    assert_eq!(journal_lines(dir.path()), 1);
}

/// A state directory of the layout before the journal (a JSON file per instance, the start
/// counts in `runs.json`) is read once and moved into the journal; a file that does not
/// parse is left where it is.
#[tokio::test]
async fn the_layout_before_the_journal_is_moved_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let inst = {
        let mock = MockEngine::new();
        let h = mock.install(&spec("old", &[]), &ctx()).await.unwrap();
        mock.instance(&h.instance).unwrap()
    };
    std::fs::write(
        dir.path().join(format!("{}.json", inst.id)),
        serde_json::to_vec(&inst).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("runs.json"), br#"{"default/old@v":2}"#).unwrap();
    std::fs::write(dir.path().join("broken.json"), b"{not an instance").unwrap();

    let mock = MockEngine::with_state_dir(dir.path()).unwrap();
    assert_eq!(mock.instances(), std::slice::from_ref(&inst));
    drop(mock);
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["broken.json", "instances.jsonl"],
        "the files read are gone; the unreadable one stays"
    );
    assert_eq!(MockEngine::stored_instances(dir.path()).unwrap(), [inst]);
    let journal = std::fs::read_to_string(dir.path().join("instances.jsonl")).unwrap();
    assert!(
        journal.contains(r#"{"run":{"key":"default/old@v","n":2}}"#),
        "{journal}"
    );
}

/// A long-lived engine's journal does not grow without bound: when it holds many more lines
/// than live entries it is rewritten as the live state.
#[tokio::test]
async fn the_journal_is_compacted_when_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockEngine::with_state_dir(dir.path()).unwrap();
    let kept = mock.install(&spec("kept", &[]), &ctx()).await.unwrap();
    for i in 0..1500 {
        let h = mock
            .install(&spec(&format!("w{i}"), &[]), &ctx())
            .await
            .unwrap();
        mock.start(&h).await.unwrap();
        mock.remove(&h).await.unwrap();
    }
    // 4 500 changes were written; the journal holds far fewer lines, and still the state.
    let lines = journal_lines(dir.path());
    assert!(lines < 2000, "{lines} lines");
    assert_eq!(
        MockEngine::stored_instances(dir.path()).unwrap(),
        [mock.instance(&kept.instance).unwrap()]
    );
}

/// An instance removed from the directory while no engine holds it is gone for the next.
#[tokio::test]
async fn an_instance_removed_while_the_engine_is_down_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = install_two(dir.path()).await;
    MockEngine::remove_stored(dir.path(), &a).unwrap();
    let mock = MockEngine::with_state_dir(dir.path()).unwrap();
    let ids: Vec<String> = mock.instances().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, [b]);
}
