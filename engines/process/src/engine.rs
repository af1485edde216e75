//! [`ProcessEngine`]: the `mesh_runtime::Engine` that runs containers' commands as host
//! processes.

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

use crate::plan;
use crate::run::{self, Inst};
use crate::state::{self, Paths, Proc, ProcGroup, Record, Slot};
use crate::NAME;

const CAPABILITIES: &[Capability] = &[
    Capability::Logs,
    Capability::Jobs,
    Capability::Recover,
    Capability::Outputs,
];

const KINDS: &[WorkloadKind] = &[
    WorkloadKind::Pod,
    WorkloadKind::Deployment,
    WorkloadKind::Job,
    WorkloadKind::DaemonSet,
];

fn engine_err(e: impl std::fmt::Display) -> Error {
    Error::engine(NAME, e.to_string())
}

/// Runs each container's `command` + `args` as a native process (not sandboxed).
#[derive(Debug)]
pub struct ProcessEngine {
    state_dir: PathBuf,
    instances: Mutex<HashMap<String, Arc<Inst>>>,
    seq: AtomicU64,
    /// Instances a process of which just exited (reaped by this engine), for
    /// [`Engine::watch`]: the node looks at the workload at once rather than at its next poll.
    exited: tokio::sync::broadcast::Sender<String>,
}

impl ProcessEngine {
    /// An engine keeping its instances under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self> {
        let state_dir = state_dir.into();
        let dir = state_dir.join("instances");
        std::fs::create_dir_all(&dir).map_err(|e| engine_err(format!("{}: {e}", dir.display())))?;
        Ok(Self {
            state_dir,
            instances: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            exited: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// Pids of the instance's container processes (group leaders), once started.
    pub fn pids(&self, handle: &Handle) -> Vec<u32> {
        self.inst(&handle.instance)
            .ok()
            .flatten()
            .map(|i| {
                i.record()
                    .slots
                    .iter()
                    .filter_map(|s| s.proc.map(|p| p.pid))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Inst>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance, from memory or (after a restart) from its record.
    fn inst(&self, id: &str) -> Result<Option<Arc<Inst>>> {
        if id.is_empty() || id.contains('/') || id.contains("..") {
            return Ok(None);
        }
        if let Some(i) = self.lock().get(id) {
            return Ok(Some(i.clone()));
        }
        let paths = Paths::new(&self.state_dir, id);
        let Some(record) = state::read_json::<Record>(&paths.record()).map_err(engine_err)? else {
            return Ok(None);
        };
        let inst = Inst::new(paths, record);
        Ok(Some(
            self.lock().entry(id.to_string()).or_insert(inst).clone(),
        ))
    }
}

impl Drop for ProcessEngine {
    /// Leaves the processes running, as a node restart would.
    fn drop(&mut self) {
        for inst in self.lock().values() {
            for t in inst
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
            {
                t.abort();
            }
        }
    }
}

fn not_found(handle: &Handle) -> Error {
    Error::NotFound {
        engine: NAME.to_string(),
        instance: handle.instance.clone(),
    }
}

#[async_trait]
impl Engine for ProcessEngine {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        CAPABILITIES
    }

    fn kinds(&self) -> &[WorkloadKind] {
        KINDS
    }

    async fn fingerprint(&self) -> Fingerprint {
        Fingerprint::healthy(
            env!("CARGO_PKG_VERSION"),
            format!(
                "host processes, not sandboxed; state in {}",
                self.state_dir.display()
            ),
        )
    }

    async fn validate(&self, spec: &WorkloadSpec) -> Result<()> {
        plan::plan(spec).map(|_| ()).map_err(Error::Invalid)
    }

    async fn prepare(&self, _spec: &WorkloadSpec) -> Result<()> {
        Ok(())
    }

    async fn install(&self, spec: &WorkloadSpec, ctx: &InstallContext) -> Result<Handle> {
        let (init, main) = plan::plan(spec).map_err(Error::Invalid)?;
        let id = format!(
            "{}-{}-{}-r{}-{:x}{:x}",
            spec.namespace,
            spec.name,
            spec.short_version(),
            ctx.replica,
            mesh_runtime::now_millis(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let paths = Paths::new(&self.state_dir, &id);
        let record = Record {
            id: id.clone(),
            workload: spec.id().to_string(),
            init,
            slots: main
                .into_iter()
                .map(|command| Slot {
                    command,
                    proc: None,
                    exit: None,
                })
                .collect(),
            starts: 0,
        };
        let made = std::fs::create_dir_all(paths.dir.join("logs"))
            .and_then(|()| state::write_json(&paths.record(), &record));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&paths.dir);
            return Err(engine_err(format!(
                "cannot create {}: {e}",
                paths.dir.display()
            )));
        }
        self.lock()
            .insert(id.clone(), Inst::new(paths.clone(), record));
        Ok(Handle {
            engine: NAME.to_string(),
            instance: id,
            data: json!({ "dir": paths.dir.display().to_string() }),
        })
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        let inst = self
            .inst(&handle.instance)?
            .ok_or_else(|| not_found(handle))?;
        if inst
            .record()
            .slots
            .iter()
            .any(|s| s.proc.is_some_and(|p| p.alive()))
        {
            return Ok(()); // already running (or adopted and still running)
        }
        inst.stop_requested.store(false, Ordering::SeqCst);
        let init = inst.record().init.clone();
        for cmd in &init {
            let child = run::spawn(&inst.paths, cmd).map_err(engine_err)?;
            let exit = run::exit_of(child.wait_with_output().await.map(|o| o.status), false);
            if exit.code != Some(0) {
                return Err(engine_err(format!(
                    "init container {} ended with {exit:?}",
                    cmd.name
                )));
            }
        }
        let commands: Vec<_> = inst
            .record()
            .slots
            .iter()
            .map(|s| s.command.clone())
            .collect();
        let mut children = Vec::with_capacity(commands.len());
        for cmd in &commands {
            match run::spawn(&inst.paths, cmd) {
                Ok(c) => children.push(c),
                Err(e) => {
                    for mut c in children {
                        if let Some(p) = c.id().and_then(Proc::current) {
                            p.signal_group(Signal::KILL);
                        }
                        let _ = c.wait().await;
                    }
                    return Err(engine_err(e));
                }
            }
        }
        let procs: Vec<Option<Proc>> = children
            .iter()
            .map(|c| {
                c.id()
                    .map(|pid| Proc::current(pid).unwrap_or(Proc { pid, start_time: 0 }))
            })
            .collect();
        inst.update(|r| {
            r.starts += 1;
            for (slot, proc) in r.slots.iter_mut().zip(&procs) {
                slot.proc = *proc;
                slot.exit = None;
            }
        })
        .map_err(engine_err)?;
        let mut tasks = inst.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        for (i, child) in children.into_iter().enumerate() {
            let exited = (self.exited.clone(), handle.instance.clone());
            tasks.push(tokio::spawn(run::reap(inst.clone(), i, child, exited)));
        }
        Ok(())
    }

    /// Each exit of a process this engine started (it reaps them): an event at once. Processes
    /// adopted after a restart are not its children; the node's monitor polls them.
    async fn watch(&self, stopped: tokio::sync::mpsc::Sender<String>) -> Result<()> {
        mesh_runtime::forward_ended(self.exited.subscribe(), stopped).await
    }

    async fn status(&self, handle: &Handle) -> Result<InstanceStatus> {
        Ok(match self.inst(&handle.instance)? {
            Some(inst) => {
                let attached = inst.attached();
                run::status_of(&inst.record(), attached)
            }
            None => InstanceStatus {
                state: InstanceState::Missing,
                health: Health::NoCheck,
                restarts: 0,
                detail: "no such process instance".to_string(),
            },
        })
    }

    async fn logs(&self, handle: &Handle, opts: LogOptions) -> Result<Vec<LogLine>> {
        let inst = self
            .inst(&handle.instance)?
            .ok_or_else(|| not_found(handle))?;
        let record = inst.record().clone();
        let paths = inst.paths.clone();
        tokio::task::spawn_blocking(move || run::read_logs(&paths, &record, opts.tail))
            .await
            .map_err(engine_err)?
            .map_err(engine_err)
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<()> {
        match self.inst(&handle.instance)? {
            Some(inst) => run::stop(&inst, grace).await.map_err(engine_err),
            None => Ok(()),
        }
    }

    async fn remove(&self, handle: &Handle) -> Result<()> {
        let Some(inst) = self.inst(&handle.instance)? else {
            return Ok(());
        };
        run::stop(&inst, Duration::ZERO).await.map_err(engine_err)?;
        for t in inst
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.lock().remove(&handle.instance);
        match std::fs::remove_dir_all(&inst.paths.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(engine_err(format!(
                "cannot remove {}: {e}",
                inst.paths.dir.display()
            ))),
            _ => Ok(()),
        }
    }

    async fn recover(&self, handle: &Handle) -> Result<Recovered> {
        let Some(inst) = self.inst(&handle.instance)? else {
            return Ok(Recovered::Gone);
        };
        let record = inst.record().clone();
        let started = record.slots.iter().any(|s| s.proc.is_some());
        let known = record
            .slots
            .iter()
            .any(|s| s.exit.is_some() || s.proc.is_some_and(|p| p.alive()));
        Ok(if !started || known || inst.attached() {
            Recovered::Adopted(run::status_of(&record, inst.attached()))
        } else {
            Recovered::Gone
        })
    }

    /// Outputs are relative to the working directory of the first container (its
    /// `workingDir`, else its private directory).
    async fn collect(
        &self,
        handle: &Handle,
        outputs: &[String],
        dest: &Path,
    ) -> Result<Vec<Artifact>> {
        let inst = self
            .inst(&handle.instance)?
            .ok_or_else(|| not_found(handle))?;
        let root = {
            let record = inst.record();
            let first = record
                .slots
                .first()
                .ok_or_else(|| engine_err("the instance has no container"))?;
            match &first.command.working_dir {
                Some(dir) => PathBuf::from(dir),
                None => inst.paths.work(&first.command.name),
            }
        };
        let (outputs, dest) = (outputs.to_vec(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || mesh_runtime::artifact::collect(&root, &outputs, &dest))
            .await
            .map_err(engine_err)?
    }
}
