//! The node's metrics, served at `GET /metrics` in the OpenMetrics text format through the
//! Prometheus org's `prometheus-client` crate. `docs/operations.md` ("Metrics") lists every
//! metric, its type, labels and meaning.
//!
//! One [`Metrics`] per node, shared as an `Arc`: the daemon makes it and hands it to the
//! network task (`NetConfig::metrics`) and to the node service (`service::Parts::metrics`);
//! the mesh and the local API reach it through [`crate::Node::metrics`]. No global: the
//! in-process test harness runs many nodes in one process, and each must count its own.
//!
//! Recording is cheap: counters and histograms are atomics behind a family's read lock (never
//! held across an await), and a sample allocates at most its label set. What is cheaper to
//! read than to maintain (engine health, connected peers, workloads by phase, the event log's
//! dropped count) is read when scraped ([`scrape`]).
//!
//! # Layout
//!
//! - this file: [`Metrics`], its families and the recording methods;
//! - [`refused`]: why a request was refused ([`Reason`]) and the local API's counting layer;
//! - [`scrape`]: the `GET /metrics` handler and what it reads at scrape time.

pub mod refused;
pub mod scrape;

pub use refused::Reason;
pub use scrape::scrape;

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use mesh_protocol::{Outcome, Step};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// Every metric name starts with this.
pub const PREFIX: &str = "meshd";

/// The `kind` label values of `meshd_dht_query_duration_seconds` (one per Kademlia query
/// result, `net::event_loop::dht::query_kind`).
pub const DHT_QUERY_KINDS: [&str; 8] = [
    "bootstrap",
    "get_closest_peers",
    "get_providers",
    "start_providing",
    "republish_provider",
    "get_record",
    "put_record",
    "republish_record",
];

/// An apply: the mesh's (entry node → every replica answered) or this node's replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyScope {
    Mesh,
    Replica,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApplyLabels {
    scope: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
    engine: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EngineLabels {
    pub(crate) engine: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WorkloadLabels {
    pub(crate) phase: &'static str,
    pub(crate) engine: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoticeLabels {
    notice: &'static str,
}

impl NoticeLabels {
    fn of(announced: bool) -> Self {
        let notice = if announced { "announced" } else { "none" };
        Self { notice }
    }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Applies: 5 ms to ~41 s.
fn apply_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Lifecycle steps: 1 ms to ~33 s (an image pull or a health check can take that long).
fn step_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Kademlia queries: 1 ms to ~16 s (the query timeout is 10 s).
fn query_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// A node's metrics: the registry the scrape encodes, and typed handles on each family.
pub struct Metrics {
    registry: Registry,
    apply: Histograms<ApplyLabels>,
    steps: Histograms<StepLabels>,
    dht_queries: Histograms<QueryLabels>,
    refused: Family<ReasonLabels, Counter>,
    gossip_dropped: Counter,
    peer_closes: Family<NoticeLabels, Counter>,
    pub(crate) engine_healthy: Family<EngineLabels, Gauge>,
    pub(crate) connected_peers: Gauge,
    pub(crate) gossip_mesh_peers: Gauge,
    pub(crate) workloads: Family<WorkloadLabels, Gauge>,
    pub(crate) event_log_dropped: Counter,
    /// Serialises scrapes: each sets the scrape-time gauges, then encodes them.
    pub(crate) scraping: Mutex<scrape::Seen>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        registry.register("build", "This meshd's software version", build);
        let start: Gauge<f64, AtomicU64> = Gauge::default();
        start.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        registry.register_with_unit(
            "start_time",
            "When this node started, in seconds since the Unix epoch",
            Unit::Seconds,
            start,
        );
        let apply: Histograms<ApplyLabels> = Family::new_with_constructor(apply_histogram);
        registry.register_with_unit(
            "apply_duration",
            "Applies answered, from request to answer: scope=mesh at the entry node (until every \
             replica answered), scope=replica for this node's own replica; outcome ok, failed \
             (a workload failed or rolled back) or error (refused or not carried out)",
            Unit::Seconds,
            apply.clone(),
        );
        let steps: Histograms<StepLabels> = Family::new_with_constructor(step_histogram);
        registry.register_with_unit(
            "lifecycle_step_duration",
            "Lifecycle steps of this node's replicas (Fetch, Install, Activate, HealthCheck, ...) \
             by engine and outcome",
            Unit::Seconds,
            steps.clone(),
        );
        let engine_healthy = Family::<EngineLabels, Gauge>::default();
        registry.register(
            "engine_healthy",
            "1 when the engine's last fingerprint found it healthy, else 0",
            engine_healthy.clone(),
        );
        let dht_queries: Histograms<QueryLabels> = Family::new_with_constructor(query_histogram);
        registry.register_with_unit(
            "dht_query_duration",
            "Kademlia queries of this node, from start to last step, by kind",
            Unit::Seconds,
            dht_queries.clone(),
        );
        let connected_peers = Gauge::default();
        registry.register(
            "connected_peers",
            "Peers this node holds a connection to",
            connected_peers.clone(),
        );
        let gossip_mesh_peers = Gauge::default();
        registry.register(
            "gossip_mesh_peers",
            "Peers in this node's gossip mesh (sent every message at once; 0 means gossip reaches this node only lazily)",
            gossip_mesh_peers.clone(),
        );
        let workloads = Family::<WorkloadLabels, Gauge>::default();
        registry.register(
            "workloads",
            "Workloads this node runs a replica of, by phase and engine",
            workloads.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "refused_requests",
            "Requests this node refused, by reason",
            refused.clone(),
        );
        let event_log_dropped = Counter::default();
        registry.register(
            "event_log_dropped",
            "Events dropped from the durable event log (oldest first, beyond its bound)",
            event_log_dropped.clone(),
        );
        let gossip_dropped = Counter::default();
        registry.register(
            "gossip_dropped",
            "Gossip messages dropped because the node's event queue was full",
            gossip_dropped.clone(),
        );
        let peer_closes = Family::<NoticeLabels, Counter>::default();
        registry.register(
            "peer_connections_closed",
            "Peers whose last connection with this node closed from their side: notice=announced \
             when the peer said it would (its connection manager), notice=none otherwise (the \
             peer is then suspect and probed)",
            peer_closes.clone(),
        );
        for announced in [true, false] {
            drop(peer_closes.get_or_create(&NoticeLabels::of(announced)));
        }
        // Known label values start at zero, so that each series exists (and `rate()` works)
        // before its first event.
        for scope in ["mesh", "replica"] {
            for outcome in ["ok", "failed", "error"] {
                drop(apply.get_or_create(&ApplyLabels { scope, outcome }));
            }
        }
        for kind in DHT_QUERY_KINDS {
            drop(dht_queries.get_or_create(&QueryLabels { kind }));
        }
        for reason in Reason::ALL {
            drop(refused.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            }));
        }
        Self {
            registry,
            apply,
            steps,
            dht_queries,
            refused,
            gossip_dropped,
            peer_closes,
            engine_healthy,
            connected_peers,
            gossip_mesh_peers,
            workloads,
            event_log_dropped,
            scraping: Mutex::new(scrape::Seen::default()),
        }
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// An apply answered after `took`.
    pub fn applied(&self, scope: ApplyScope, outcome: &'static str, took: Duration) {
        let scope = match scope {
            ApplyScope::Mesh => "mesh",
            ApplyScope::Replica => "replica",
        };
        self.apply
            .get_or_create(&ApplyLabels { scope, outcome })
            .observe(took.as_secs_f64());
    }

    /// A lifecycle step of a replica on `engine` ended.
    pub fn step(&self, step: Step, engine: &str, outcome: Outcome, took: Duration) {
        let outcome = match outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        };
        let labels = StepLabels {
            step: step.as_str(),
            engine: engine.to_string(),
            outcome,
        };
        self.steps
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A Kademlia query of `kind` finished after `took`.
    pub fn dht_query(&self, kind: &'static str, took: Duration) {
        self.dht_queries
            .get_or_create(&QueryLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// A request refused for `reason`.
    pub fn refused(&self, reason: Reason) {
        self.refused
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// A peer's last connection with this node closed from its side, `announced` or not.
    pub fn peer_closed(&self, announced: bool) {
        self.peer_closes
            .get_or_create(&NoticeLabels::of(announced))
            .inc();
    }

    /// How many peers closed their last connection with this node, `announced` or not.
    pub fn peer_closes(&self, announced: bool) -> u64 {
        self.peer_closes
            .get_or_create(&NoticeLabels::of(announced))
            .get()
    }

    /// A gossip message dropped for want of room in the node's queue.
    pub fn gossip_dropped(&self) {
        self.gossip_dropped.inc();
    }
}

/// The outcome label of an apply: `ok`, `failed` when any workload failed or rolled back,
/// `error` (`None`) when it was refused or not carried out.
pub fn apply_outcome(outcomes: Option<&[mesh_protocol::api::ApplyOutcome]>) -> &'static str {
    use mesh_protocol::api::ApplyAction;
    match outcomes {
        Some(o)
            if o.iter()
                .any(|w| matches!(w.action, ApplyAction::Failed | ApplyAction::RolledBack)) =>
        {
            "failed"
        }
        Some(_) => "ok",
        None => "error",
    }
}
