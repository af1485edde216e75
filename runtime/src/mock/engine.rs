//! The mock engine's [`Engine`] implementation: every lifecycle call, as scripted by the
//! workload's annotations (see the parent module).

use super::*;

#[async_trait]
impl Engine for MockEngine {
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
        if self.healthy.load(Ordering::SeqCst) {
            Fingerprint::healthy(
                env!("CARGO_PKG_VERSION"),
                "mock engine (scripted by annotations)",
            )
        } else {
            Fingerprint::unhealthy("mock daemon scripted down")
        }
    }

    async fn prepare(&self, _spec: &WorkloadSpec) -> Result<()> {
        self.counters.prepares.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn install(&self, spec: &WorkloadSpec, ctx: &InstallContext) -> Result<Handle> {
        self.counters.installs.fetch_add(1, Ordering::Relaxed);
        let seq = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{}-{}-{}-{:x}{seq}",
            spec.namespace,
            spec.name,
            spec.short_version(),
            now_millis()
        );
        let mut logs = vec![log(format!(
            "installed {} version {} on {}",
            spec.id(),
            spec.version,
            ctx.node
        ))];
        logs.extend(
            spec.containers
                .iter()
                .map(|c| log(format!("container {} image {}", c.name, c.image))),
        );
        let inst = MockInstance {
            id: id.clone(),
            spec: spec.clone(),
            ctx: ctx.clone(),
            state: MockRunState::Created,
            started_at: None,
            starts: 0,
            logs,
            exit_code: None,
        };
        let mut map = self.lock();
        self.persist(&inst)?;
        map.insert(id.clone(), inst);
        // The instance is made and written down: a compaction that fails changes nothing of
        // that (the journal stays as it was, longer).
        if let Err(e) = self.compact_if_grown(&map) {
            tracing::warn!(error = %e, "mock engine: journal not compacted");
        }
        drop(map);
        Ok(Handle {
            engine: NAME.to_string(),
            instance: id,
            data: serde_json::Value::Null,
        })
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        let spec = self
            .instance(&handle.instance)
            .ok_or_else(|| Self::not_found(handle))?
            .spec;
        if let Some(ms) = annotation_u64(&spec, annotations::MOCK_START_DELAY_MS) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(msg) = spec.annotation(annotations::MOCK_START_ERROR) {
            let msg = msg.to_string();
            self.modify(handle, |inst| {
                inst.logs.push(LogLine {
                    stream: LogStream::Stderr,
                    ..log(format!("start failed: {msg}"))
                });
                Ok(())
            })?;
            return Err(Error::engine(NAME, msg));
        }
        self.counters.starts.fetch_add(1, Ordering::Relaxed);
        let exit_code = match spec.annotation(annotations::MOCK_EXIT_CODES) {
            Some(list) => scripted_exit_code(list, self.count_run(&spec)?),
            None => None,
        };
        self.write_outputs(&handle.instance, &spec)?;
        self.modify(handle, |inst| {
            inst.state = MockRunState::Running;
            inst.started_at = Some(now_millis());
            inst.starts += 1;
            inst.exit_code = exit_code;
            inst.logs.push(log("started"));
            Ok(())
        })
    }

    async fn status(&self, handle: &Handle) -> Result<InstanceStatus> {
        let map = self.lock();
        Ok(match map.get(&handle.instance) {
            Some(inst) => Self::status_of(inst, now_millis()),
            None => InstanceStatus {
                state: InstanceState::Missing,
                health: Health::NoCheck,
                restarts: 0,
                detail: "no such mock instance".to_string(),
            },
        })
    }

    async fn logs(&self, handle: &Handle, opts: LogOptions) -> Result<Vec<LogLine>> {
        let inst = self
            .instance(&handle.instance)
            .ok_or_else(|| Self::not_found(handle))?;
        if let Some(ms) = annotation_u64(&inst.spec, annotations::MOCK_LOGS_DELAY_MS) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut lines = inst.logs.clone();
        if let InstanceState::Exited { code } = Self::status_of(&inst, now_millis()).state {
            if inst.state == MockRunState::Running {
                lines.push(log(format!("exited with code {code}")));
            }
        }
        if let Some(n) = opts.tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        Ok(lines)
    }

    async fn stop(&self, handle: &Handle, _grace: Duration) -> Result<()> {
        self.counters.stops.fetch_add(1, Ordering::Relaxed);
        match self.modify(handle, |inst| {
            if inst.state == MockRunState::Running {
                inst.state = MockRunState::Stopped;
                inst.logs.push(log("stopped"));
            }
            Ok(())
        }) {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    async fn remove(&self, handle: &Handle) -> Result<()> {
        self.counters.removes.fetch_add(1, Ordering::Relaxed);
        let delay = self
            .instance(&handle.instance)
            .and_then(|i| annotation_u64(&i.spec, annotations::MOCK_REMOVE_DELAY_MS));
        if let Some(ms) = delay {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        {
            let mut map = self.lock();
            map.remove(&handle.instance);
            self.forget(&handle.instance)?;
        }
        if !handle.instance.is_empty() && !handle.instance.contains(['/', '.']) {
            match std::fs::remove_dir_all(self.work_dir(&handle.instance)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::engine(NAME, e.to_string()))
                }
                _ => {}
            }
            // Gone with the last instance; fails harmlessly while others remain.
            let _ = std::fs::remove_dir(&self.work_root);
        }
        Ok(())
    }

    async fn recover(&self, handle: &Handle) -> Result<Recovered> {
        self.counters.recovers.fetch_add(1, Ordering::Relaxed);
        let map = self.lock();
        Ok(match map.get(&handle.instance) {
            Some(inst) => Recovered::Adopted(Self::status_of(inst, now_millis())),
            None => Recovered::Gone,
        })
    }

    async fn collect(
        &self,
        handle: &Handle,
        outputs: &[String],
        dest: &Path,
    ) -> Result<Vec<Artifact>> {
        if self.instance(&handle.instance).is_none() {
            return Err(Self::not_found(handle));
        }
        // A run that wrote nothing has no directory: every declared output is then missing.
        let root = self.work_dir(&handle.instance);
        let (outputs, dest) = (outputs.to_vec(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || crate::artifact::collect(&root, &outputs, &dest))
            .await
            .map_err(|e| Error::engine(NAME, e.to_string()))?
    }
}
