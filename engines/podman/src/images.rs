//! Images: pulled in `fetch` according to each container's pull policy, required to be local
//! in `prepare`. A pull is bounded by the engine's pull timeout, so an offline node fails fast
//! with the image named instead of hanging in `kube play`.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use mesh_protocol::spec::PullPolicy;
use mesh_protocol::WorkloadSpec;
use mesh_runtime::error::Result;
use mesh_runtime::Error;
use podman_api::opts::PullOpts;

use crate::api::{call, call_opt, API_TIMEOUT};
use crate::PodmanEngine;

/// Every image of the spec with the policy that applies: the most eager one when containers
/// sharing an image disagree (`Always` over `IfNotPresent` over `Never`).
fn images(spec: &WorkloadSpec) -> BTreeMap<&str, PullPolicy> {
    let rank = |p: PullPolicy| match p {
        PullPolicy::Never => 0,
        PullPolicy::IfNotPresent => 1,
        PullPolicy::Always => 2,
    };
    let mut out: BTreeMap<&str, PullPolicy> = BTreeMap::new();
    for c in spec.init_containers.iter().chain(&spec.containers) {
        let entry = out.entry(c.image.as_str()).or_insert(c.pull_policy);
        if rank(c.pull_policy) > rank(*entry) {
            *entry = c.pull_policy;
        }
    }
    out
}

fn unavailable(image: &str, why: &str) -> Error {
    Error::Invalid(format!(
        "image {image} is not available locally and could not be pulled: {why}"
    ))
}

impl PodmanEngine {
    /// Fetch phase: pulls `Always` images, and missing `IfNotPresent` ones.
    pub(crate) async fn fetch_images(&self, spec: &WorkloadSpec) -> Result<()> {
        for (image, policy) in images(spec) {
            match policy {
                PullPolicy::Never => {}
                PullPolicy::IfNotPresent => {
                    if !self.image_exists(image).await? {
                        self.pull(image)
                            .await
                            .map_err(|why| unavailable(image, &why))?;
                    }
                }
                PullPolicy::Always => {
                    if let Err(why) = self.pull(image).await {
                        // An offline node keeps running what it has.
                        if self.image_exists(image).await? {
                            tracing::warn!(%image, %why, "pull failed; using the local image");
                        } else {
                            return Err(unavailable(image, &why));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Prepare phase: every image is local, pulling the missing ones the policy allows.
    pub(crate) async fn require_images(&self, spec: &WorkloadSpec) -> Result<()> {
        for (image, policy) in images(spec) {
            if self.image_exists(image).await? {
                continue;
            }
            if policy == PullPolicy::Never {
                return Err(unavailable(image, "its pull policy is Never"));
            }
            self.pull(image)
                .await
                .map_err(|why| unavailable(image, &why))?;
        }
        Ok(())
    }

    pub(crate) async fn image_exists(&self, image: &str) -> Result<bool> {
        if image.trim().is_empty() {
            return Err(Error::Invalid("a container has no image".to_string()));
        }
        let images = self.podman.images();
        let what = format!("image exists {image}");
        Ok(call(&what, API_TIMEOUT, images.get(image).exists()).await?)
    }

    /// Pulls `image` within the pull timeout; the error is Podman's reason.
    async fn pull(&self, image: &str) -> std::result::Result<(), String> {
        let images = self.podman.images();
        let opts = PullOpts::builder().reference(image).quiet(true).build();
        let pull = async {
            let mut stream = images.pull(&opts);
            let mut failure = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(report) => failure = report.error.or(failure),
                    Err(podman_api::Error::Fault { message, .. }) => return Err(message),
                    Err(e) => return Err(e.to_string()),
                }
            }
            failure.map_or(Ok(()), Err)
        };
        match tokio::time::timeout(self.pull_timeout, pull).await {
            Ok(result) => result.map_err(|e| e.trim().to_string()),
            Err(_) => Err(format!("the pull timed out after {:?}", self.pull_timeout)),
        }
    }

    /// Images (of this spec) whose configuration sets no `PATH`.
    pub(crate) async fn images_without_path(
        &self,
        spec: &WorkloadSpec,
    ) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for image in images(spec).into_keys() {
            let images = self.podman.images();
            let what = format!("image inspect {image}");
            let Some(info) = call_opt(&what, API_TIMEOUT, images.get(image).inspect()).await?
            else {
                return Err(unavailable(image, "it disappeared before install"));
            };
            let env = info.config.and_then(|c| c.env).unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                out.insert(image.to_string());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use mesh_protocol::spec::{Container, SourceFormat};
    use mesh_protocol::WorkloadKind;

    use super::*;

    #[test]
    fn the_most_eager_policy_wins_per_image() {
        let mut spec =
            WorkloadSpec::new("w", "default", WorkloadKind::Pod, SourceFormat::Kubernetes);
        let c = |image: &str, pull_policy| Container {
            name: "c".into(),
            image: image.into(),
            pull_policy,
            ..Container::default()
        };
        spec.init_containers.push(c("a", PullPolicy::Never));
        spec.containers.push(c("a", PullPolicy::Always));
        spec.containers.push(c("b", PullPolicy::Never));
        let got = images(&spec);
        assert_eq!(got["a"], PullPolicy::Always);
        assert_eq!(got["b"], PullPolicy::Never);
    }
}
