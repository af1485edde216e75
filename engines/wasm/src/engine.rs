//! [`WasmEngine`]: the `mesh_runtime::Engine` for Functions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mesh_protocol::api::LogLine;
use mesh_protocol::job::Artifact;
use mesh_protocol::{WorkloadKind, WorkloadSpec};
use mesh_runtime::engine::{
    Capability, Engine, Fingerprint, Handle, Health, InstallContext, InstanceState, InstanceStatus,
    LogOptions, Recovered,
};
use mesh_runtime::error::{Error, Result};
use rustix::process::Signal;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::digest::Digest;
use crate::fetch::{self, ModuleFetcher};
use crate::logs::LogRing;
use crate::observe;
use crate::spare::Spares;
use crate::spec;
use crate::state::{self, Paths, Record};
use crate::store::{self, ModuleStore};
use crate::supervise::{self, Ctx, Live};
use crate::trash::Trash;
use crate::{logs, StartInfo, NAME, WASMTIME_VERSION};

const CAPABILITIES: &[Capability] = &[
    Capability::Logs,
    Capability::Sandbox,
    Capability::Wasm,
    Capability::Jobs,
    Capability::Recover,
    Capability::Limits,
    Capability::Outputs,
];

const KINDS: &[WorkloadKind] = &[WorkloadKind::Function];

/// Name of the runner binary.
pub const RUNNER_BIN: &str = "mesh-wasm-runner";

/// Default period of the runner's epoch ticker (precision of deadlines and stops).
pub const DEFAULT_EPOCH_TICK_MS: u64 = 10;

/// Instances whose runner this engine value supervises, with the supervising task.
type LiveMap = HashMap<String, (Arc<Live>, JoinHandle<()>)>;

/// Runs Functions: each instance is a `mesh-wasm-runner` child process (see the crate docs).
#[derive(Debug)]
pub struct WasmEngine {
    state_dir: PathBuf,
    runner_path: PathBuf,
    store: ModuleStore,
    cache_dir: PathBuf,
    epoch_tick_ms: u64,
    live: Mutex<LiveMap>,
    seq: AtomicU64,
    /// Where missing modules come from (the mesh); without it a missing module fails Fetch.
    fetcher: Option<Arc<dyn ModuleFetcher>>,
    /// Instances whose runner ended for good (not restarted under the restart policy, nor
    /// stopped by the node), for [`Engine::watch`].
    ended: tokio::sync::broadcast::Sender<String>,
    /// The warm runner (see [`crate::spare`]).
    spares: Arc<Spares>,
    /// Where removed instances' directories are deleted in the background.
    trash: Trash,
}

fn engine_err(e: impl std::fmt::Display) -> Error {
    Error::engine(NAME, e.to_string())
}

impl WasmEngine {
    /// An engine keeping modules, the compile cache and instances under `state_dir`, and
    /// running guests with the runner binary at `runner_path`.
    pub fn new(state_dir: impl Into<PathBuf>, runner_path: impl Into<PathBuf>) -> Result<Self> {
        let state_dir = state_dir.into();
        let store = ModuleStore::open(&state_dir).map_err(engine_err)?;
        let cache_dir = state_dir.join("cache");
        for dir in [&cache_dir, &state_dir.join("instances")] {
            std::fs::create_dir_all(dir)
                .map_err(|e| engine_err(format!("{}: {e}", dir.display())))?;
        }
        let runner_path = runner_path.into();
        let spares = Spares::new(runner_path.clone(), state_dir.join("spares"))
            .map_err(|e| engine_err(format!("{}: {e}", state_dir.join("spares").display())))?;
        let trash = Trash::open(&state_dir)
            .map_err(|e| engine_err(format!("{}: {e}", state_dir.join("trash").display())))?;
        Ok(Self {
            state_dir,
            runner_path,
            spares: Arc::new(spares),
            trash,
            store,
            cache_dir,
            epoch_tick_ms: DEFAULT_EPOCH_TICK_MS,
            live: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            fetcher: None,
            ended: tokio::sync::broadcast::channel(64).0,
        })
    }

    /// The process id of the warm runner waiting for the next first start, if one is ready
    /// (see [`crate::spare`]).
    pub fn spare_runner(&self) -> Option<u32> {
        self.spares.ready()
    }

    /// Changes the epoch tick (precision of timeouts and stops; default 10 ms).
    pub fn with_epoch_tick(mut self, tick: Duration) -> Self {
        self.epoch_tick_ms = (tick.as_millis() as u64).max(1);
        self
    }

    /// Fetches modules this node lacks through `fetcher` during the Fetch phase, verifying
    /// each download against its digest and skipping providers whose bytes do not verify.
    pub fn with_fetcher(mut self, fetcher: Arc<dyn ModuleFetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// `mesh-wasm-runner` next to the current executable (and, for test binaries in
    /// `target/*/deps`, one directory up), else on `PATH`.
    pub fn find_runner() -> Option<PathBuf> {
        crate::find_runner()
    }

    /// The content-addressed module store (the node puts fetched modules here).
    pub fn store(&self) -> &ModuleStore {
        &self.store
    }

    /// Directory of the compile cache.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// How the current run's module was obtained (compile time, cache hit), once known.
    pub fn start_info(&self, handle: &Handle) -> Option<StartInfo> {
        if let Some(live) = self.get_live(&handle.instance) {
            if let Some(info) = live.lock().start_info {
                return Some(info);
            }
        }
        let st: state::RunStatus =
            state::read_json(&self.paths(&handle.instance).status()).ok()??;
        Some(StartInfo {
            compile_ms: st.compile_ms?,
            cached: st.cached?,
        })
    }

    /// Whether this engine value still supervises the instance's runner (not yet reaped and
    /// settled); for tests.
    pub fn supervising(&self, handle: &Handle) -> bool {
        self.get_live(&handle.instance)
            .is_some_and(|live| !live.is_done())
    }

    /// Pid of the instance's current runner process, if it was started.
    pub fn runner_pid(&self, handle: &Handle) -> Option<u32> {
        if let Some(live) = self.get_live(&handle.instance) {
            return live.lock().record.runner.map(|p| p.pid);
        }
        self.read_record(&handle.instance)
            .ok()??
            .runner
            .map(|p| p.pid)
    }

    fn paths(&self, id: &str) -> Paths {
        Paths::new(&self.state_dir, id)
    }

    fn get_live(&self, id: &str) -> Option<Arc<Live>> {
        self.lock_live().get(id).map(|(l, _)| l.clone())
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, LiveMap> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_record(&self, id: &str) -> Result<Option<Record>> {
        if id.contains('/') || id.contains("..") || id.is_empty() {
            return Ok(None);
        }
        state::read_json(&self.paths(id).record()).map_err(engine_err)
    }

    fn digest_of(spec: &WorkloadSpec) -> Result<Digest> {
        spec::plan(spec).map(|p| p.digest).map_err(Error::Invalid)
    }
}

impl Drop for WasmEngine {
    /// Detaches from the runners without killing them, as a node restart would.
    fn drop(&mut self) {
        for (_, (_, task)) in self.lock_live().drain() {
            task.abort();
        }
    }
}

#[async_trait]
impl Engine for WasmEngine {
    fn name(&self) -> &str {
        NAME
    }

    /// The runner's final frame (exit, trap, failure) reaches the supervising task, which
    /// reports the instance here when the restart policy does not restart it.
    async fn watch(&self, stopped: tokio::sync::mpsc::Sender<String>) -> Result<()> {
        mesh_runtime::forward_ended(self.ended.subscribe(), stopped).await
    }

    fn capabilities(&self) -> &[Capability] {
        CAPABILITIES
    }

    fn kinds(&self) -> &[WorkloadKind] {
        KINDS
    }

    async fn fingerprint(&self) -> Fingerprint {
        match std::fs::metadata(&self.runner_path) {
            Ok(m) if m.is_file() => Fingerprint::healthy(
                format!("wasmtime {WASMTIME_VERSION}"),
                format!("runner {}", self.runner_path.display()),
            ),
            Ok(_) => {
                Fingerprint::unhealthy(format!("{} is not a file", self.runner_path.display()))
            }
            Err(e) => Fingerprint::unhealthy(format!("runner {}: {e}", self.runner_path.display())),
        }
    }

    async fn validate(&self, spec: &WorkloadSpec) -> Result<()> {
        spec::plan(spec).map(|_| ()).map_err(Error::Invalid)
    }

    async fn fetch(&self, spec: &WorkloadSpec) -> Result<()> {
        let digest = Self::digest_of(spec)?;
        if self.store.has(&digest) {
            return Ok(());
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(engine_err(store::Error::Missing(digest)));
        };
        let fetched = fetch::fetch_into(&self.store, fetcher.as_ref(), &digest)
            .await
            .map_err(engine_err)?;
        tracing::info!(
            module = %digest,
            from = %fetched.from,
            bytes = fetched.bytes,
            skipped = fetched.skipped.len(),
            "module fetched and verified"
        );
        Ok(())
    }

    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()> {
        let digest = Self::digest_of(spec)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.verify(&digest))
            .await
            .map_err(engine_err)?
            .map(|_| ())
            .map_err(engine_err)
    }

    async fn install(&self, spec: &WorkloadSpec, ctx: &InstallContext) -> Result<Handle> {
        let plan = spec::plan(spec).map_err(Error::Invalid)?;
        let id = format!(
            "{}-{}-{}-r{}-{:x}{:x}",
            spec.namespace,
            spec.name,
            spec.short_version(),
            ctx.replica,
            logs::now_millis(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let paths = self.paths(&id);
        let record = Record {
            id: id.clone(),
            workload: spec.id().to_string(),
            name: spec.name.clone(),
            digest: plan.digest,
            args: plan.args,
            env: plan.env,
            memory_limit_bytes: plan.memory_limit_bytes,
            timeout_ms: plan.timeout_ms,
            restart_policy: plan.restart_policy,
            runs_to_completion: plan.runs_to_completion,
            runner: None,
            starts: 0,
        };
        let made = std::fs::create_dir_all(paths.scratch())
            .and_then(|()| state::write_json(&paths.record(), &record));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&paths.dir);
            return Err(engine_err(format!(
                "cannot create {}: {e}",
                paths.dir.display()
            )));
        }
        Ok(Handle {
            engine: NAME.to_string(),
            instance: id,
            data: json!({
                "digest": plan.digest.to_string(),
                "dir": paths.dir.display().to_string(),
            }),
        })
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        let previous = self.get_live(&handle.instance);
        if let Some(l) = previous.as_ref().filter(|l| !l.is_done()) {
            if !l.ended() {
                return Ok(()); // already running
            }
            // The guest ended and its runner is exiting: let it be reaped first.
            supervise::wait_done(l, supervise::KILL_WAIT).await;
        }
        let record = self
            .read_record(&handle.instance)?
            .ok_or_else(|| not_found(handle))?;
        if record.runner.is_some_and(|p| p.alive()) {
            return Ok(()); // adopted after a restart and still running
        }
        let module_path = self
            .store
            .get(&record.digest)
            .ok_or_else(|| engine_err(store::Error::Missing(record.digest)))?;
        let ctx = Ctx {
            runner_path: self.runner_path.clone(),
            cache_dir: self.cache_dir.clone(),
            module_path,
            paths: self.paths(&handle.instance),
            epoch_tick_ms: self.epoch_tick_ms,
            spares: self.spares.clone(),
            ended: self.ended.clone(),
        };
        let live = Live::new(ctx, record);
        if let Some(old) = previous {
            // Earlier runs' lines stay readable after a restart (rollback path).
            live.lock().ring = std::mem::replace(&mut old.lock().ring, LogRing::new(0));
        }
        let (child, stdout) = supervise::spawn(&live).await.map_err(engine_err)?;
        let task = tokio::spawn(supervise::supervise(live.clone(), child, stdout));
        if let Some((_, old)) = self
            .lock_live()
            .insert(handle.instance.clone(), (live, task))
        {
            old.abort();
        }
        Ok(())
    }

    async fn status(&self, handle: &Handle) -> Result<InstanceStatus> {
        if let Some(live) = self.get_live(&handle.instance) {
            let st = live.lock();
            return Ok(observe::live_status(
                &st.run,
                st.start_info,
                st.record.starts,
            ));
        }
        Ok(match self.read_record(&handle.instance)? {
            Some(record) => observe::file_status(&record, &self.paths(&handle.instance)),
            None => InstanceStatus {
                state: InstanceState::Missing,
                health: Health::NoCheck,
                restarts: 0,
                detail: "no such wasm instance".to_string(),
            },
        })
    }

    async fn logs(&self, handle: &Handle, opts: LogOptions) -> Result<Vec<LogLine>> {
        if let Some(live) = self.get_live(&handle.instance) {
            return Ok(live.lock().ring.lines(opts.tail));
        }
        if self.read_record(&handle.instance)?.is_none() {
            return Err(not_found(handle));
        }
        let path = self.paths(&handle.instance).log();
        tokio::task::spawn_blocking(move || logs::read_log_file(&path, opts.tail))
            .await
            .map_err(engine_err)?
            .map_err(engine_err)
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<()> {
        if let Some(live) = self.get_live(&handle.instance) {
            return supervise::stop(&live, grace).await.map_err(engine_err);
        }
        let Some(record) = self.read_record(&handle.instance)? else {
            return Ok(());
        };
        match record.runner {
            Some(p) if p.alive() => observe::stop_detached(p, grace, &self.paths(&handle.instance))
                .await
                .map_err(engine_err),
            _ => Ok(()),
        }
    }

    async fn remove(&self, handle: &Handle) -> Result<()> {
        if handle.instance.is_empty()
            || handle.instance.contains('/')
            || handle.instance.contains("..")
        {
            return Ok(());
        }
        let live = self.lock_live().remove(&handle.instance);
        if let Some((live, task)) = live {
            supervise::stop(&live, Duration::ZERO)
                .await
                .map_err(engine_err)?;
            task.abort();
        }
        let record = self.read_record(&handle.instance)?;
        if let Some(p) = record.and_then(|r| r.runner).filter(|p| p.alive()) {
            supervise::kill_group(p.pid, Signal::KILL);
        }
        let dir = self.paths(&handle.instance).dir;
        self.trash
            .discard(&dir)
            .map_err(|e| engine_err(format!("cannot remove {}: {e}", dir.display())))
    }

    async fn recover(&self, handle: &Handle) -> Result<Recovered> {
        if let Some(live) = self.get_live(&handle.instance) {
            let st = live.lock();
            return Ok(Recovered::Adopted(observe::live_status(
                &st.run,
                st.start_info,
                st.record.starts,
            )));
        }
        let Some(record) = self.read_record(&handle.instance)? else {
            return Ok(Recovered::Gone);
        };
        Ok(observe::recover(&record, &self.paths(&handle.instance)))
    }

    /// Outputs are relative to the guest's `/scratch`.
    async fn collect(
        &self,
        handle: &Handle,
        outputs: &[String],
        dest: &Path,
    ) -> Result<Vec<Artifact>> {
        if self.read_record(&handle.instance)?.is_none() {
            return Err(not_found(handle));
        }
        let root = self.paths(&handle.instance).scratch();
        let (outputs, dest) = (outputs.to_vec(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || mesh_runtime::artifact::collect(&root, &outputs, &dest))
            .await
            .map_err(engine_err)?
    }
}

fn not_found(handle: &Handle) -> Error {
    Error::NotFound {
        engine: NAME.to_string(),
        instance: handle.instance.clone(),
    }
}
