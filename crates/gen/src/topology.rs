//! The incident topologies: richer than the demo shop, described as data so that one trace
//! builder (`incident.rs`) walks any of them and fault scenarios (`scenario.rs`) can name any
//! service, instance, node, dependency or edge.
//!
//! Each topology has a Kubernetes namespace, 2–3 pods per service spread over 3 nodes, two
//! databases, a Redis cache, an uninstrumented external API (client spans only), and a queue with
//! a consumer service. Services mix the old and the new OpenTelemetry semantic conventions
//! (`http.method` / `http.request.method`, `net.peer.name` / `server.address`, `db.name` /
//! `db.namespace`), as a real fleet upgraded one service at a time does.
//!
//! Names as the insights graph sees them: a database by `db.namespace` (old: `db.name`), the
//! cache and the external API by `peer.service`.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::model::{attr_i64, attr_str};

/// Which generation of the semantic conventions a service's instrumentation emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semconv {
    Old,
    New,
}

pub struct ServiceSpec {
    pub name: &'static str,
    pub semconv: Semconv,
    pub language: &'static str,
    pub instances: usize,
    pub version: &'static str,
    pub next_version: &'static str,
}

/// A database or cache: called through client spans with `db.system`, never instrumented.
pub struct DatabaseSpec {
    /// The name the insights graph gives it (`db.namespace`, or `peer.service` for a cache).
    pub name: &'static str,
    pub system: &'static str,
    /// `db.namespace` / `db.name`; `None` for a cache, which is named by `peer.service` instead.
    pub namespace: Option<&'static str>,
    pub address: &'static str,
    pub port: i64,
    pub latency_ms: f64,
    pub timeout_ms: f64,
}

/// An uninstrumented HTTP API outside the cluster, named by `peer.service`.
pub struct ExternalSpec {
    pub name: &'static str,
    pub address: &'static str,
    pub latency_ms: f64,
    pub timeout_ms: f64,
}

pub struct TopicSpec {
    pub name: &'static str,
    pub system: &'static str,
    pub broker: &'static str,
}

pub enum Endpoint {
    Http {
        method: &'static str,
        route: &'static str,
    },
    Grpc {
        service: &'static str,
        method: &'static str,
    },
    /// A consumer span reading `topic` (an index into `TopologySpec::topics`).
    Consume { topic: usize },
}

pub enum Callee {
    Operation(usize),
    Database {
        database: usize,
        operation: &'static str,
        table: &'static str,
    },
    External {
        external: usize,
        method: &'static str,
        path: &'static str,
    },
    /// A producer span, then the consumer operation as its child (and linked to it).
    Publish {
        topic: usize,
        consumer: usize,
    },
}

pub struct CallSpec {
    pub callee: Callee,
    pub probability: f64,
    /// The caller tolerates a failure of this call (a fallback): its own span stays OK.
    pub fallback: bool,
}

pub struct OperationSpec {
    pub service: usize,
    pub endpoint: Endpoint,
    /// Mean self time in milliseconds.
    pub self_ms: f64,
    /// An internal child span covering the work after the calls (e.g. rendering).
    pub internal: Option<&'static str>,
    pub calls: Vec<CallSpec>,
}

pub struct TopologySpec {
    pub name: &'static str,
    pub namespace: &'static str,
    pub cluster: &'static str,
    pub nodes: Vec<&'static str>,
    pub services: Vec<ServiceSpec>,
    pub databases: Vec<DatabaseSpec>,
    pub externals: Vec<ExternalSpec>,
    pub topics: Vec<TopicSpec>,
    pub operations: Vec<OperationSpec>,
    /// Root operations and their weights.
    pub entries: Vec<(usize, u32)>,
}

impl TopologySpec {
    pub(crate) fn empty(
        name: &'static str,
        namespace: &'static str,
        nodes: Vec<&'static str>,
    ) -> Self {
        TopologySpec {
            name,
            namespace,
            cluster: "prod-eu-1",
            nodes,
            services: Vec::new(),
            databases: Vec::new(),
            externals: Vec::new(),
            topics: Vec::new(),
            operations: Vec::new(),
            entries: Vec::new(),
        }
    }

    pub(crate) fn service(
        &mut self,
        name: &'static str,
        semconv: Semconv,
        language: &'static str,
        instances: usize,
    ) -> usize {
        let (version, next_version) = match self.services.len() % 3 {
            0 => ("1.8.3", "1.9.0"),
            1 => ("2.4.1", "2.5.0"),
            _ => ("0.17.2", "0.18.0"),
        };
        self.services.push(ServiceSpec {
            name,
            semconv,
            language,
            instances,
            version,
            next_version,
        });
        self.services.len() - 1
    }

    pub(crate) fn operation(
        &mut self,
        service: usize,
        endpoint: Endpoint,
        self_ms: f64,
        calls: Vec<CallSpec>,
    ) -> usize {
        self.operations.push(OperationSpec {
            service,
            endpoint,
            self_ms,
            internal: None,
            calls,
        });
        self.operations.len() - 1
    }

    pub(crate) fn http(
        &mut self,
        service: usize,
        method: &'static str,
        route: &'static str,
        self_ms: f64,
        calls: Vec<CallSpec>,
    ) -> usize {
        self.operation(service, Endpoint::Http { method, route }, self_ms, calls)
    }

    pub(crate) fn grpc(
        &mut self,
        service: usize,
        grpc_service: &'static str,
        method: &'static str,
        self_ms: f64,
        calls: Vec<CallSpec>,
    ) -> usize {
        let endpoint = Endpoint::Grpc {
            service: grpc_service,
            method,
        };
        self.operation(service, endpoint, self_ms, calls)
    }

    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.services
            .iter()
            .position(|service| service.name == name)
    }

    /// Every caller→callee pair of instrumented services with a client/server call between them.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut edges = Vec::new();
        for operation in &self.operations {
            for call in &operation.calls {
                if let Callee::Operation(callee) = call.callee {
                    let edge = (operation.service, self.operations[callee].service);
                    if !edges.contains(&edge) {
                        edges.push(edge);
                    }
                }
            }
        }
        edges
    }
}

/// One pod of a service.
pub struct Instance {
    pub pod: String,
    pub instance_id: String,
    pub node: usize,
}

/// A topology with concrete pods (names drawn from the seed) and their resources.
pub struct IncidentTopology {
    pub spec: TopologySpec,
    pub instances: Vec<Vec<Instance>>,
    /// Per service and instance: the resource before and after a deploy.
    resources: Vec<Vec<[Resource; 2]>>,
}

impl IncidentTopology {
    pub fn new(spec: TopologySpec, seed: u64) -> IncidentTopology {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x7090_1091);
        let node_offset = rng.random_range(0..spec.nodes.len());
        let mut instances = Vec::new();
        let mut resources = Vec::new();
        for (service_index, service) in spec.services.iter().enumerate() {
            let replica_set: u32 = rng.random();
            let mut pods = Vec::new();
            let mut pod_resources = Vec::new();
            for replica in 0..service.instances {
                let suffix: String = (0..5)
                    .map(|_| char::from(b"bcdfghjklmnpqrstvwxz2456789"[rng.random_range(0..27)]))
                    .collect();
                let instance = Instance {
                    pod: format!("{}-{replica_set:08x}-{suffix}", service.name),
                    instance_id: format!("{:032x}", rng.random::<u128>()),
                    node: (service_index + replica + node_offset) % spec.nodes.len(),
                };
                let resource = |version: &str| Resource {
                    attributes: resource_attributes(&spec, service, &instance, version),
                    ..Default::default()
                };
                pod_resources.push([resource(service.version), resource(service.next_version)]);
                pods.push(instance);
            }
            instances.push(pods);
            resources.push(pod_resources);
        }
        IncidentTopology {
            spec,
            instances,
            resources,
        }
    }

    pub fn resource(&self, service: usize, instance: usize, deployed: bool) -> Resource {
        self.resources[service][instance][usize::from(deployed)].clone()
    }

    /// (service, instance) of the pod called `pod`.
    pub fn find_pod(&self, pod: &str) -> Option<(usize, usize)> {
        self.instances
            .iter()
            .enumerate()
            .find_map(|(service, pods)| {
                pods.iter()
                    .position(|instance| instance.pod == pod)
                    .map(|instance| (service, instance))
            })
    }
}

fn resource_attributes(
    spec: &TopologySpec,
    service: &ServiceSpec,
    instance: &Instance,
    version: &str,
) -> Vec<KeyValue> {
    let environment_key = match service.semconv {
        Semconv::New => "deployment.environment.name",
        Semconv::Old => "deployment.environment",
    };
    vec![
        attr_str("service.name", service.name),
        attr_str("service.namespace", spec.namespace),
        attr_str("service.version", version),
        attr_str("service.instance.id", &instance.instance_id),
        attr_str(environment_key, "production"),
        attr_str("k8s.cluster.name", spec.cluster),
        attr_str("k8s.namespace.name", spec.namespace),
        attr_str("k8s.deployment.name", service.name),
        attr_str("k8s.pod.name", &instance.pod),
        attr_str("k8s.container.name", service.name),
        attr_str("k8s.node.name", spec.nodes[instance.node]),
        attr_str("host.name", &instance.pod),
        attr_str("telemetry.sdk.name", "opentelemetry"),
        attr_str("telemetry.sdk.language", service.language),
        attr_i64("process.pid", 1),
    ]
}
