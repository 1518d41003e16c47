//! The ground truth of a run (`--truth-file`): the scenario, its target named as the insights
//! graph names entities (`kind` service | instance | node | external | edge, `name`, and
//! `service` for an instance), onset and end in Unix nanoseconds (strings, as in OTLP JSON), the
//! seed, the topology, the noise and every entity, so an evaluation scores without reading traces.

use serde_json::{json, Value};

use crate::scenario::{Dependency, Fault, Plan, Scenario};
use crate::topology::{Callee, IncidentTopology};

impl Plan {
    /// The ground truth as JSON (nanosecond times as strings, as in OTLP JSON).
    pub fn truth_json(&self, topology: &IncidentTopology, seed: u64) -> Value {
        let spec = &topology.spec;
        let target = self.fault.as_ref().and_then(|fault| match fault {
            Fault::Latency { service, .. } | Fault::Error { service, .. } | Fault::BadDeploy { service, .. } => {
                Some(json!({"kind": "service", "name": spec.services[*service].name}))
            }
            Fault::Saturation { instances, node: Some(node), .. } => Some(json!({
                "kind": "node", "name": spec.nodes[*node],
                "instances": instances.iter().map(|(s, i)| topology.instances[*s][*i].pod.clone()).collect::<Vec<_>>(),
            })),
            Fault::Saturation { instances, node: None, .. } => instances.first().map(|(service, instance)| {
                let pod = &topology.instances[*service][*instance];
                json!({"kind": "instance", "name": pod.pod, "service": spec.services[*service].name,
                       "node": spec.nodes[pod.node]})
            }),
            Fault::DependencyDown { dependency: Dependency::Database(database) } => {
                let database = &spec.databases[*database];
                Some(json!({"kind": "external", "name": database.name, "dbSystem": database.system,
                            "serverAddress": database.address}))
            }
            Fault::DependencyDown { dependency: Dependency::External(external) } => {
                let external = &spec.externals[*external];
                Some(json!({"kind": "external", "name": external.name, "serverAddress": external.address}))
            }
            Fault::NetworkDelay { caller, callee, .. } => Some(json!({
                "kind": "edge",
                "name": format!("{}->{}", spec.services[*caller].name, spec.services[*callee].name),
                "caller": spec.services[*caller].name, "callee": spec.services[*callee].name,
            })),
            Fault::TrafficSpike { .. } => None,
        });
        let nanos = |t: u64| (t != u64::MAX).then(|| t.to_string());
        let incident = self.scenario.is_incident();
        json!({
            "scenario": self.scenario.name(),
            "incident": incident,
            "target": target,
            "onsetUnixNanos": (self.scenario != Scenario::None).then(|| self.onset.to_string()),
            "endUnixNanos": if self.scenario == Scenario::None { None } else { nanos(self.end) },
            "runStartUnixNanos": self.run_start.to_string(),
            "runEndUnixNanos": self.run_end.map(|t| t.to_string()),
            "seed": seed,
            "topology": spec.name,
            "fault": self.fault.as_ref().map(|fault| format!("{fault:?}")),
            "noise": {
                "backgroundErrorRatio": self.background_error_ratio,
                "chronicErrors": {"service": spec.services[self.chronic_service].name, "ratio": self.chronic_error_ratio},
                "harmlessDeploy": self.harmless_deploy.map(|(service, at)| json!({
                    "service": spec.services[service].name, "version": spec.services[service].next_version,
                    "atUnixNanos": at.to_string(),
                })),
                "latencyBlips": self.blips.iter().map(|blip| json!({
                    "service": spec.services[blip.service].name, "startUnixNanos": blip.start.to_string(),
                    "endUnixNanos": blip.end.to_string(), "factor": blip.factor,
                })).collect::<Vec<_>>(),
            },
            "entities": entities_json(topology),
        })
    }
}

/// The topology's entities, so an evaluation can check names without reading traces.
fn entities_json(topology: &IncidentTopology) -> Value {
    let spec = &topology.spec;
    let services: Vec<Value> = spec
        .services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            json!({
                "name": service.name,
                "semconv": format!("{:?}", service.semconv).to_lowercase(),
                "versions": [service.version, service.next_version],
                "instances": topology.instances[index].iter().map(|pod| json!({
                    "pod": pod.pod, "instanceId": pod.instance_id, "node": spec.nodes[pod.node],
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let edges: Vec<String> = spec
        .edges()
        .into_iter()
        .map(|(caller, callee)| {
            format!(
                "{}->{}",
                spec.services[caller].name, spec.services[callee].name
            )
        })
        .collect();
    let consumers: Vec<Value> = spec.operations.iter().flat_map(|operation| &operation.calls).filter_map(|call| match call.callee {
        Callee::Publish { topic, consumer } => Some(json!({
            "topic": spec.topics[topic].name, "consumer": spec.services[spec.operations[consumer].service].name,
        })),
        _ => None,
    }).collect();
    json!({
        "namespace": spec.namespace,
        "nodes": spec.nodes,
        "services": services,
        "databases": spec.databases.iter().map(|d| json!({"name": d.name, "system": d.system, "serverAddress": d.address})).collect::<Vec<_>>(),
        "externals": spec.externals.iter().map(|e| json!({"name": e.name, "serverAddress": e.address})).collect::<Vec<_>>(),
        "topics": consumers,
        "edges": edges,
    })
}
