//! A headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! commands in on fd 3, answers out on fd 4, each a JSON text ended by NUL), so a test can read
//! the live DOM of a page that keeps a stream open. (`--dump-dom` cannot: it dumps at the load
//! event, before the stream's first message, and `--virtual-time-budget` never ends while an
//! EventSource is connected.)
//!
//! Chromium is found as `$MESH_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
//! Without it a test skips with a printed reason, unless `CI=true` or `MESH_REQUIRE_ENGINES`
//! names `chromium`: then it fails.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long one DevTools command may take to be answered.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two reads of a page's DOM.
const POLL: Duration = Duration::from_millis(100);
/// How long Chromium may take to exit once asked to.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Chromium binary, or `None` (with the reason printed) when the test may skip.
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("MESH_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            ["chromium", "chromium-browser"]
                .iter()
                .find_map(|b| on_path(b))
        });
    if found.is_some() {
        return found;
    }
    let why = "not installed (apt-get install -y chromium, or set MESH_CHROMIUM)";
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "chromium is required when CI=true but is {why}"
    );
    // Prints the reason and skips, or fails when MESH_REQUIRE_ENGINES names chromium.
    mesh_runtime::testing::engine_available("chromium", Err(why.to_string()));
    None
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A running headless Chromium with a fresh profile.
pub struct Browser {
    child: Child,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn launch(chromium: &Path) -> Self {
        let profile = tempfile::tempdir().unwrap();
        // The shell hands Chromium our stdin as fd 3 and our stdout as fd 4, then execs it.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 >/dev/null </dev/null"#)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut child = child;
        let commands = child.stdin.take().unwrap();
        let answers = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            commands,
            answers,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends `method` (to the page `session`, or the browser); returns the command's id.
    async fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).await.unwrap();
        self.commands.flush().await.unwrap();
        id
    }

    /// Sends `method` and returns its result.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, params).await;
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = self.answers.read_until(0, &mut buf).await.unwrap();
                assert!(n > 0, "chromium closed its DevTools pipe during {method}");
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                let v: Value = serde_json::from_slice(&buf).unwrap();
                if v["id"] == json!(id) {
                    return v; // anything else is an event: not needed here
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("chromium did not answer {method} within {CALL_TIMEOUT:?}"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Opens `url` in a new tab; returns its session.
    pub async fn open(&mut self, url: &str) -> String {
        let target = self
            .call(None, "Target.createTarget", json!({"url": url}))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        attached["sessionId"].as_str().unwrap().to_string()
    }

    /// The page's DOM as it is now (what `--dump-dom` prints).
    pub async fn dom(&mut self, session: &str) -> String {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": "document.documentElement.outerHTML", "returnByValue": true}),
            )
            .await;
        result["result"]["value"].as_str().unwrap_or("").to_string()
    }

    /// The page's DOM once `done` holds of it; panics (with the DOM) after `timeout`.
    pub async fn dom_until(
        &mut self,
        session: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let dom = self.dom(session).await;
            if done(&dom) {
                return dom;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; the page is:\n{dom}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks Chromium to exit and waits for it (killed when it does not in time).
    pub async fn close(mut self) {
        self.send(None, "Browser.close", json!({})).await;
        if tokio::time::timeout(CLOSE_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
