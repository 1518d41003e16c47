//! Fault scenarios: what goes wrong, where, and when, plus the background noise every run has.
//!
//! A `Plan` is resolved once per run from the options and the seed: the fault (`Fault`, with
//! its target and magnitudes drawn from the seed), the interval `[onset, end)` in Unix
//! nanoseconds, and the noise (a low error rate everywhere, one service with chronic errors,
//! latency blips, sometimes a harmless deploy). The trace builder asks the plan, span by span,
//! how the span starting at time `t` behaves; a fault applies to spans whose *start* lies in the
//! interval. `truth_json` describes the plan as the ground truth an evaluation scores against.

use std::path::PathBuf;

use anyhow::bail;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::topology::IncidentTopology;

const NANOS_PER_SEC: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Latency,
    Error,
    Saturation,
    DependencyDown,
    NetworkDelay,
    BadDeploy,
    TrafficSpike,
    None,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Latency => "latency",
            Scenario::Error => "error",
            Scenario::Saturation => "saturation",
            Scenario::DependencyDown => "dependency-down",
            Scenario::NetworkDelay => "network-delay",
            Scenario::BadDeploy => "bad-deploy",
            Scenario::TrafficSpike => "traffic-spike",
            Scenario::None => "none",
        }
    }

    /// Whether a correct analysis reports an incident for this scenario.
    pub fn is_incident(self) -> bool {
        !matches!(self, Scenario::TrafficSpike | Scenario::None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopologyKind {
    /// The demo shop (no scenarios).
    Shop,
    /// An online store with pods on nodes, two databases, a cache, an external API and a queue.
    Incident,
    /// A travel booking site, built like `incident` with other names and shapes.
    Booking,
}

/// Scenario options of `andante gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScenarioArgs {
    /// Trace topology; default `incident` when `--scenario` is given, else `shop`.
    #[arg(long, value_enum)]
    pub topology: Option<TopologyKind>,
    /// Inject a fault (or `none`/`traffic-spike`: no incident) into the generated traffic.
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    /// What the fault hits: a service, a pod or node (saturation), a database or external API
    /// (dependency-down), `caller->callee` (network-delay). Default: chosen by the seed.
    #[arg(long)]
    pub scenario_target: Option<String>,
    /// Seconds after the start of the run when the fault begins.
    #[arg(long, default_value_t = 60)]
    pub scenario_onset_secs: u64,
    /// How long the fault lasts; default until the end of the run.
    #[arg(long)]
    pub scenario_duration_secs: Option<u64>,
    /// Writes the ground truth (scenario, target, onset, end, seed, topology) as JSON here.
    #[arg(long)]
    pub truth_file: Option<PathBuf>,
    /// Instead of sending in real time, generate this many seconds of traffic dated over the
    /// last N seconds (ending now) and send it as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub backfill_secs: u64,
}

impl Default for ScenarioArgs {
    /// No scenario, with the same defaults as the command line.
    fn default() -> Self {
        ScenarioArgs {
            topology: None,
            scenario: None,
            scenario_target: None,
            scenario_onset_secs: 60,
            scenario_duration_secs: None,
            truth_file: None,
            backfill_secs: 0,
        }
    }
}

/// A database, cache or external API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Database(usize),
    External(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Latency {
        service: usize,
        extra_ms: f64,
    },
    Error {
        service: usize,
        ratio: f64,
    },
    /// `instances` are (service, instance) pairs: one pod, or every pod on `node`.
    Saturation {
        instances: Vec<(usize, usize)>,
        node: Option<usize>,
        factor: f64,
    },
    DependencyDown {
        dependency: Dependency,
    },
    NetworkDelay {
        caller: usize,
        callee: usize,
        extra_ms: f64,
    },
    BadDeploy {
        service: usize,
        error_ratio: f64,
        slow_factor: f64,
        extra_ms: f64,
    },
    TrafficSpike {
        rate_factor: f64,
        latency_factor: f64,
    },
}

/// A short stretch during which one service is slower (noise, not an incident).
#[derive(Debug, Clone, PartialEq)]
pub struct Blip {
    pub service: usize,
    pub start: u64,
    pub end: u64,
    pub factor: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub scenario: Scenario,
    pub fault: Option<Fault>,
    pub run_start: u64,
    pub run_end: Option<u64>,
    pub onset: u64,
    /// Exclusive; `u64::MAX` when the fault lasts until the end of an open-ended run.
    pub end: u64,
    pub background_error_ratio: f64,
    pub chronic_service: usize,
    pub chronic_error_ratio: f64,
    pub blips: Vec<Blip>,
    /// A deploy with no change in behaviour: (service, time).
    pub harmless_deploy: Option<(usize, u64)>,
}

impl Plan {
    /// Resolves the scenario over `[run_start, run_end)`; the seed picks a default target and
    /// every magnitude.
    pub fn new(
        topology: &IncidentTopology,
        args: &ScenarioArgs,
        seed: u64,
        run_start: u64,
        run_end: Option<u64>,
    ) -> anyhow::Result<Plan> {
        let scenario = args.scenario.unwrap_or(Scenario::None);
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xfa17_5eed);
        let onset = run_start + args.scenario_onset_secs * NANOS_PER_SEC;
        let end = match (args.scenario_duration_secs, run_end) {
            (Some(duration), _) => onset + duration * NANOS_PER_SEC,
            (None, Some(run_end)) => run_end,
            (None, None) => u64::MAX,
        };
        let end = run_end.map_or(end, |run_end| end.min(run_end));
        let fault = resolve_fault(
            topology,
            scenario,
            args.scenario_target.as_deref(),
            &mut rng,
        )?;
        // Noise has its own stream: one seed gives the same noise under every scenario.
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x0015_e5ee);
        let services = topology.spec.services.len();
        let target_service = fault.as_ref().and_then(|fault| fault.service());
        let chronic_service = pick_other(&mut rng, services, target_service);
        let span_secs = run_end
            .map_or(900, |run_end| {
                (run_end.saturating_sub(run_start)) / NANOS_PER_SEC
            })
            .max(60);
        let mut blips = Vec::new();
        for _ in 0..(span_secs / 240).max(1) {
            let start = run_start + rng.random_range(0..span_secs) * NANOS_PER_SEC;
            let length = rng.random_range(5..20) * NANOS_PER_SEC;
            blips.push(Blip {
                service: rng.random_range(0..services),
                start,
                end: start + length,
                factor: rng.random_range(1.5..2.5),
            });
        }
        let harmless_deploy = rng.random_bool(0.5).then(|| {
            let service = pick_other(&mut rng, services, target_service);
            let at =
                run_start + rng.random_range(span_secs / 10..span_secs * 9 / 10) * NANOS_PER_SEC;
            (service, at)
        });
        Ok(Plan {
            scenario,
            fault,
            run_start,
            run_end,
            onset,
            end,
            background_error_ratio: 0.005,
            chronic_service,
            chronic_error_ratio: 0.03,
            blips,
            harmless_deploy,
        })
    }

    pub fn active(&self, t: u64) -> bool {
        self.fault.is_some() && t >= self.onset && t < self.end
    }

    fn fault_at(&self, t: u64) -> Option<&Fault> {
        self.fault.as_ref().filter(|_| self.active(t))
    }

    /// Self time in nanoseconds of a span of `service` on `instance` starting at `t`, given the
    /// self time it would have had with no fault and no noise.
    pub fn self_time(&self, service: usize, instance: usize, t: u64, base_nanos: u64) -> u64 {
        let mut nanos = base_nanos as f64;
        for blip in &self.blips {
            if blip.service == service && t >= blip.start && t < blip.end {
                nanos *= blip.factor;
            }
        }
        match self.fault_at(t) {
            Some(Fault::Latency {
                service: target,
                extra_ms,
            }) if *target == service => nanos += extra_ms * 1e6,
            Some(Fault::Saturation {
                instances, factor, ..
            }) if instances.contains(&(service, instance)) => nanos *= factor,
            Some(Fault::BadDeploy {
                service: target,
                slow_factor,
                extra_ms,
                ..
            }) if *target == service => nanos = nanos * slow_factor + extra_ms * 1e6,
            Some(Fault::TrafficSpike { latency_factor, .. }) => nanos *= latency_factor,
            _ => {}
        }
        nanos as u64
    }

    /// Latency of a database or external call with no fault, scaled by a traffic spike.
    pub fn dependency_latency(&self, t: u64, base_nanos: u64) -> u64 {
        match self.fault_at(t) {
            Some(Fault::TrafficSpike { latency_factor, .. }) => {
                (base_nanos as f64 * latency_factor) as u64
            }
            _ => base_nanos,
        }
    }

    /// Probability that a server span of `service` starting at `t` fails by itself.
    pub fn origin_error_ratio(&self, service: usize, t: u64) -> f64 {
        let mut ratio = self.background_error_ratio;
        if service == self.chronic_service {
            ratio = self.chronic_error_ratio;
        }
        match self.fault_at(t) {
            Some(Fault::Error {
                service: target,
                ratio: fault_ratio,
            }) if *target == service => ratio.max(*fault_ratio),
            Some(Fault::BadDeploy {
                service: target,
                error_ratio,
                ..
            }) if *target == service => ratio.max(*error_ratio),
            _ => ratio,
        }
    }

    /// Whether `service` runs its next version at `t` (a bad deploy is rolled back at the end).
    pub fn deployed(&self, service: usize, t: u64) -> bool {
        if let Some(Fault::BadDeploy {
            service: target, ..
        }) = &self.fault
        {
            if *target == service && t >= self.onset && t < self.end {
                return true;
            }
        }
        self.harmless_deploy
            .is_some_and(|(deployed, at)| deployed == service && t >= at)
    }

    /// Extra time on the wire of the edge caller→callee for a call starting at `t`.
    pub fn edge_delay_nanos(&self, caller: usize, callee: usize, t: u64) -> u64 {
        match self.fault_at(t) {
            Some(Fault::NetworkDelay {
                caller: c,
                callee: d,
                extra_ms,
            }) if (*c, *d) == (caller, callee) => (extra_ms * 1e6) as u64,
            _ => 0,
        }
    }

    pub fn dependency_down(&self, dependency: Dependency, t: u64) -> bool {
        matches!(self.fault_at(t), Some(Fault::DependencyDown { dependency: down }) if *down == dependency)
    }

    /// How many times the normal rate traces start at `t`.
    pub fn rate_factor(&self, t: u64) -> f64 {
        match self.fault_at(t) {
            Some(Fault::TrafficSpike { rate_factor, .. }) => *rate_factor,
            _ => 1.0,
        }
    }
}

impl Fault {
    /// The service a service-level fault hits.
    fn service(&self) -> Option<usize> {
        match self {
            Fault::Latency { service, .. }
            | Fault::Error { service, .. }
            | Fault::BadDeploy { service, .. } => Some(*service),
            Fault::Saturation {
                instances,
                node: None,
                ..
            } => instances.first().map(|(service, _)| *service),
            Fault::NetworkDelay { callee, .. } => Some(*callee),
            _ => None,
        }
    }
}

fn pick_other(rng: &mut SmallRng, count: usize, avoid: Option<usize>) -> usize {
    loop {
        let pick = rng.random_range(0..count);
        if Some(pick) != avoid || count == 1 {
            return pick;
        }
    }
}

fn resolve_fault(
    topology: &IncidentTopology,
    scenario: Scenario,
    target: Option<&str>,
    rng: &mut SmallRng,
) -> anyhow::Result<Option<Fault>> {
    let spec = &topology.spec;
    let service_names = || {
        spec.services
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let service = |rng: &mut SmallRng| -> anyhow::Result<usize> {
        match target {
            None => Ok(rng.random_range(0..spec.services.len())),
            Some(name) => match spec.service_index(name) {
                Some(index) => Ok(index),
                None => bail!(
                    "unknown service `{name}` for `--scenario-target`; one of: {}",
                    service_names()
                ),
            },
        }
    };
    Ok(Some(match scenario {
        Scenario::None => return Ok(None),
        Scenario::Latency => Fault::Latency {
            service: service(rng)?,
            extra_ms: rng.random_range(300.0..800.0),
        },
        Scenario::Error => Fault::Error {
            service: service(rng)?,
            ratio: rng.random_range(0.3..0.6),
        },
        Scenario::BadDeploy => Fault::BadDeploy {
            service: service(rng)?,
            error_ratio: rng.random_range(0.2..0.4),
            slow_factor: rng.random_range(1.5..2.5),
            extra_ms: rng.random_range(20.0..60.0),
        },
        Scenario::TrafficSpike => Fault::TrafficSpike {
            rate_factor: 3.0,
            latency_factor: rng.random_range(1.1..1.2),
        },
        Scenario::Saturation => {
            let factor = rng.random_range(4.0..8.0);
            let on_node = |node: usize| {
                let instances =
                    topology
                        .instances
                        .iter()
                        .enumerate()
                        .flat_map(|(service, pods)| {
                            pods.iter()
                                .enumerate()
                                .filter(move |(_, pod)| pod.node == node)
                                .map(move |(instance, _)| (service, instance))
                        });
                Fault::Saturation {
                    instances: instances.collect(),
                    node: Some(node),
                    factor,
                }
            };
            match target {
                Some(name) if spec.nodes.contains(&name) => on_node(
                    spec.nodes
                        .iter()
                        .position(|node| *node == name)
                        .unwrap_or(0),
                ),
                Some(name) if topology.find_pod(name).is_some() => Fault::Saturation {
                    instances: topology.find_pod(name).into_iter().collect(),
                    node: None,
                    factor,
                },
                None if rng.random_bool(0.25) => on_node(rng.random_range(0..spec.nodes.len())),
                _ => {
                    let service = service(rng).map_err(|_| {
                        anyhow::anyhow!("unknown service, pod or node `{}` for `--scenario-target`; nodes: {}; services: {}",
                            target.unwrap_or_default(), spec.nodes.join(", "), service_names())
                    })?;
                    let instance = rng.random_range(0..topology.instances[service].len());
                    Fault::Saturation {
                        instances: vec![(service, instance)],
                        node: None,
                        factor,
                    }
                }
            }
        }
        Scenario::DependencyDown => {
            let mut candidates: Vec<(&str, Dependency)> = spec
                .externals
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name, Dependency::External(i)))
                .collect();
            candidates.extend(
                spec.databases
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (d.name, Dependency::Database(i))),
            );
            let dependency = match target {
                Some(name) => match candidates.iter().find(|(candidate, _)| *candidate == name) {
                    Some((_, dependency)) => *dependency,
                    None => bail!(
                        "unknown dependency `{name}` for `--scenario-target`; one of: {}",
                        candidates
                            .iter()
                            .map(|(name, _)| *name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                // The seed picks the external API or a database (a cache only when named).
                None => {
                    let choices: Vec<Dependency> = candidates.iter().map(|(_, d)| *d)
                        .filter(|d| !matches!(d, Dependency::Database(i) if spec.databases[*i].namespace.is_none()))
                        .collect();
                    choices[rng.random_range(0..choices.len())]
                }
            };
            Fault::DependencyDown { dependency }
        }
        Scenario::NetworkDelay => {
            let edges = spec.edges();
            let edge_name = |(caller, callee): (usize, usize)| {
                format!(
                    "{}->{}",
                    spec.services[caller].name, spec.services[callee].name
                )
            };
            let (caller, callee) = match target {
                Some(name) => match edges.iter().find(|edge| edge_name(**edge) == name) {
                    Some(edge) => *edge,
                    None => bail!(
                        "unknown edge `{name}` for `--scenario-target`; one of: {}",
                        edges
                            .iter()
                            .map(|edge| edge_name(*edge))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                None => edges[rng.random_range(0..edges.len())],
            };
            Fault::NetworkDelay {
                caller,
                callee,
                extra_ms: rng.random_range(200.0..500.0),
            }
        }
    }))
}
