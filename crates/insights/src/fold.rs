//! The fold: each trace is reduced once to per entity × cell aggregates ([`CellAcc`]) on a
//! fixed grid of cells, plus the relations, version history, instance placement and peer
//! names it shows. An on-demand analysis folds the traces of its window on a grid that starts
//! at the window's start; continuous insights fold each trace as it settles on a grid aligned
//! to the epoch and keep the aggregates, so an evaluation reads entities × cells instead of
//! re-reading spans. Both then take the same [`Accumulator::view`], so they agree on the same
//! traces.
//!
//! What each entity's samples are:
//! - service, operation, instance, node, namespace: one sample per request (entry span):
//!   its duration, its error, the self time of the service's own spans under it, and whether
//!   one of them is an error origin;
//! - edge to a service: one sample per client span: its duration and its self time (client
//!   minus server: the edge delay); a client span whose peer names a known service but gets
//!   no server span counts as `missing`;
//! - database / external: one sample per client span with no server side (self = duration);
//! - topic: one sample per producer span.

use std::collections::{BTreeMap, HashMap};

use crate::entity::{EntityIdx, EntityKind, EntityTable};
use crate::record::{SpanKind, SpanRecord};
use crate::structure::{analyze_trace, Scratch, SpanFacts, NONE};
use crate::window::{Relation, RelationKind};

/// Trace ids kept per cell and list: evidence shows at most this many.
pub(crate) const EXAMPLES: usize = 5;

/// The best few traces of a cell by a score, ties broken by the smaller trace id, and each
/// trace once (at its best score). Which traces are kept does not depend on the order traces
/// are folded in, and the best [`EXAMPLES`] of a range of cells are always among the kept ones
/// of its cells.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopTraces(Vec<(u64, [u8; 16])>);

fn better(a: (u64, [u8; 16]), b: (u64, [u8; 16])) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl TopTraces {
    pub(crate) fn offer(&mut self, score: u64, trace: [u8; 16]) {
        if let Some(kept) = self.0.iter_mut().find(|(_, kept)| *kept == trace) {
            kept.0 = kept.0.max(score);
            return;
        }
        if self.0.len() < EXAMPLES {
            self.0.push((score, trace));
            return;
        }
        let worst = (0..self.0.len())
            .reduce(|worst, at| {
                if better(self.0[worst], self.0[at]) {
                    at
                } else {
                    worst
                }
            })
            .unwrap_or(0);
        if better((score, trace), self.0[worst]) {
            self.0[worst] = (score, trace);
        }
    }

    /// The best `EXAMPLES` distinct traces of several lists, best first.
    pub(crate) fn best_of<'a>(lists: impl Iterator<Item = &'a TopTraces>) -> Vec<[u8; 16]> {
        let mut merged: Vec<(u64, [u8; 16])> = lists.flat_map(|list| list.0.clone()).collect();
        merged.retain(|(score, _)| *score > 0);
        merged.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut ids: Vec<[u8; 16]> = Vec::new();
        for (_, trace) in merged {
            if !ids.contains(&trace) {
                ids.push(trace);
            }
            if ids.len() == EXAMPLES {
                break;
            }
        }
        ids
    }
}

/// Example traces of one entity × cell, one list per kind of evidence.
#[derive(Debug, Clone, Default)]
pub(crate) struct Examples {
    pub self_time: TopTraces,
    pub latency: TopTraces,
    pub origins: TopTraces,
    pub errors: TopTraces,
    /// Failed client spans that no server span answered.
    pub unanswered: TopTraces,
    pub any: TopTraces,
}

/// Requests of one version: what an Amend assertion compares before and after a deploy.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub requests: f64,
    pub origins: f64,
    pub self_nanos: f64,
}

impl Tally {
    fn add(&mut self, origin: bool, self_nanos: u64) {
        self.requests += 1.0;
        self.origins += f64::from(u8::from(origin));
        self.self_nanos += self_nanos as f64;
    }

    pub(crate) fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.origins += other.origins;
        self.self_nanos += other.self_nanos;
    }
}

/// One version of a service in one cell.
#[derive(Debug, Clone, Default)]
pub(crate) struct VersionCell {
    pub first_seen_nanos: u64,
    pub instances: Vec<String>,
    pub tally: Tally,
    /// Requests of this version; an error origin scores higher.
    pub examples: TopTraces,
}

/// The samples of one entity in one cell.
#[derive(Debug, Clone, Default)]
pub(crate) struct CellAcc {
    pub count: u32,
    pub errors: u32,
    pub origins: u32,
    pub missing: u32,
    /// Self times and durations, nanoseconds; ascending when `sorted`.
    pub selfs: Vec<u64>,
    pub durations: Vec<u64>,
    pub sorted: bool,
    pub examples: Examples,
}

impl CellAcc {
    /// Sorts the samples once after they last changed.
    pub(crate) fn sort(&mut self) {
        if !self.sorted {
            self.selfs.sort_unstable();
            self.durations.sort_unstable();
            self.sorted = true;
        }
    }
}

/// What a span of the trace being folded resolved to.
#[derive(Clone, Copy)]
struct Resolved {
    service: EntityIdx,
    owner: EntityIdx,
    cell: u64,
    request_self_nanos: u64,
    request_origin: bool,
}

/// Aggregates of folded traces on a grid of cells `[origin + n × width, + width)`.
pub(crate) struct Accumulator {
    origin: u64,
    width: u64,
    /// The last cell of an on-demand window: spans after it count in it, as spans before the
    /// origin count in cell 0.
    last_cell: Option<u64>,
    pub(crate) entities: EntityTable,
    /// Looked up once per sample: Fx hashing, as the keys are our own small integers, never
    /// values a sender chooses (those keep the default, collision-resistant hasher).
    pub(crate) cells: rustc_hash::FxHashMap<(EntityIdx, u64), CellAcc>,
    /// Each relation with the last cell it was seen in.
    pub(crate) relations: HashMap<Relation, u64>,
    pub(crate) versions: HashMap<(EntityIdx, String), BTreeMap<u64, VersionCell>>,
    /// Each instance's node, with the last cell that said so.
    pub(crate) instance_node: HashMap<EntityIdx, (EntityIdx, u64)>,
    /// How client spans name an unanswered peer (edge, database or external entity): the
    /// smallest (peer, attribute) seen, for the evidence query.
    pub(crate) peers: HashMap<EntityIdx, (String, &'static str)>,
    /// Peer name → the known service it names; cleared when a service is added.
    peer_services: HashMap<String, Option<EntityIdx>>,
    services_known: usize,
    scratch: Scratch,
    facts: Vec<SpanFacts>,
    members: Vec<u32>,
    resolved: Vec<Resolved>,
}

impl Accumulator {
    pub(crate) fn new(origin: u64, width: u64, last_cell: Option<u64>) -> Accumulator {
        Accumulator {
            origin,
            width: width.max(1),
            last_cell,
            entities: EntityTable::default(),
            cells: rustc_hash::FxHashMap::default(),
            relations: HashMap::new(),
            versions: HashMap::new(),
            instance_node: HashMap::new(),
            peers: HashMap::new(),
            peer_services: HashMap::new(),
            services_known: 0,
            scratch: Scratch::default(),
            facts: Vec::new(),
            members: Vec::new(),
            resolved: Vec::new(),
        }
    }

    pub(crate) fn width(&self) -> u64 {
        self.width
    }

    pub(crate) fn cell_of(&self, nanos: u64) -> u64 {
        let cell = nanos.saturating_sub(self.origin) / self.width;
        self.last_cell.map_or(cell, |last| cell.min(last))
    }

    pub(crate) fn cell_start(&self, cell: u64) -> u64 {
        self.origin.saturating_add(cell.saturating_mul(self.width))
    }

    /// Folds the spans of any number of whole traces (in any order). Every service is known
    /// first, so a client span's peer resolves to a service seen anywhere among them whatever
    /// the order of traces.
    pub(crate) fn fold_traces(&mut self, mut records: Vec<SpanRecord>) {
        for record in &records {
            self.entities.service(&record.service);
        }
        records.sort_by_key(|record| record.trace_id);
        for trace in records.chunk_by(|a, b| a.trace_id == b.trace_id) {
            self.fold_trace(trace);
        }
    }

    /// Folds the spans of one trace (in any order).
    pub(crate) fn fold_trace(&mut self, records: &[SpanRecord]) {
        let count = records.len();
        if count == 0 {
            return;
        }
        for record in records {
            self.entities.service(&record.service);
        }
        self.members.clear();
        self.members.extend(0..count as u32);
        self.facts.clear();
        self.facts.resize(count, SpanFacts::default());
        analyze_trace(records, &self.members, &mut self.scratch, &mut self.facts);
        let mut resolved = std::mem::take(&mut self.resolved);
        resolved.clear();
        for (index, record) in records.iter().enumerate() {
            let service = self.entities.service(&record.service);
            let cell = self.cell_of(record.start_nanos);
            let fact = self.facts[index];
            let owner = self.owner(record, &fact, records, service, cell);
            resolved.push(Resolved {
                service,
                owner,
                cell,
                request_self_nanos: 0,
                request_origin: false,
            });
        }
        for index in 0..count {
            let (span, fact) = (resolved[index], self.facts[index]);
            if span.owner != span.service || fact.entry == NONE {
                continue;
            }
            let entry = &mut resolved[fact.entry as usize];
            entry.request_self_nanos += fact.self_nanos;
            entry.request_origin |= fact.origin;
        }
        for (index, span) in resolved.iter().enumerate() {
            if self.facts[index].entry == index as u32 {
                let is_root = self.facts[index].parent == NONE;
                self.request(&records[index], span, is_root);
            }
        }
        self.resolved = resolved;
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        entity: EntityIdx,
        cell: u64,
        record: &SpanRecord,
        self_nanos: u64,
        origin: bool,
        missing: bool,
        unanswered: bool,
    ) {
        let duration = record.duration_nanos();
        let acc = self.cells.entry((entity, cell)).or_default();
        acc.count += 1;
        acc.errors += u32::from(record.error);
        acc.origins += u32::from(origin);
        acc.missing += u32::from(missing);
        acc.selfs.push(self_nanos);
        acc.durations.push(duration);
        acc.sorted = false;
        let (examples, trace) = (&mut acc.examples, record.trace_id);
        examples.self_time.offer(self_nanos, trace);
        examples.latency.offer(duration, trace);
        examples.any.offer(1, trace);
        if origin {
            examples.origins.offer(1, trace);
        }
        if record.error {
            examples.errors.offer(1, trace);
            if unanswered {
                examples.unanswered.offer(1, trace);
            }
        }
    }

    fn relate(
        &mut self,
        kind: RelationKind,
        from: EntityIdx,
        to: EntityIdx,
        edge: Option<EntityIdx>,
        cell: u64,
    ) {
        let relation = Relation {
            kind,
            from,
            to,
            edge,
        };
        let last = self.relations.entry(relation).or_insert(cell);
        *last = (*last).max(cell);
    }

    fn name_peer(&mut self, entity: EntityIdx, record: &SpanRecord) {
        let (Some(peer), Some(key)) = (record.peer.as_deref(), record.peer_key) else {
            return;
        };
        match self.peers.get_mut(&entity) {
            Some(kept) if (kept.0.as_str(), kept.1) <= (peer, key) => {}
            Some(kept) => *kept = (peer.to_string(), key),
            None => {
                self.peers.insert(entity, (peer.to_string(), key));
            }
        }
    }

    /// Decides who owns a span and records the samples of non-request entities.
    fn owner(
        &mut self,
        record: &SpanRecord,
        fact: &SpanFacts,
        records: &[SpanRecord],
        service: EntityIdx,
        cell: u64,
    ) -> EntityIdx {
        if let Some(topic) = record.destination.as_deref() {
            let topic_entity = self.entities.named(EntityKind::Topic, topic);
            match record.kind {
                SpanKind::Producer => {
                    self.relate(RelationKind::Produces, service, topic_entity, None, cell);
                    let duration = record.duration_nanos();
                    self.push(
                        topic_entity,
                        cell,
                        record,
                        duration,
                        fact.origin,
                        false,
                        false,
                    );
                }
                SpanKind::Consumer => {
                    self.relate(RelationKind::Consumes, service, topic_entity, None, cell)
                }
                _ => {}
            }
        }
        if record.kind != SpanKind::Client {
            return service;
        }
        if fact.receiving_child != NONE {
            let callee_name = &records[fact.receiving_child as usize].service;
            let callee = self.entities.service(callee_name);
            let edge = self.entities.edge(service, callee);
            self.relate(RelationKind::Calls, service, callee, Some(edge), cell);
            self.push(
                edge,
                cell,
                record,
                fact.self_nanos,
                fact.origin,
                false,
                false,
            );
            return edge;
        }
        let Some(peer) = record.peer.as_deref() else {
            return service;
        };
        // A database call names a database, even one called like a service (`catalog` the
        // service and `catalog` its database); and a peer named like the caller itself is not
        // the caller answering itself.
        let callee = if record.db_system.is_none() {
            self.peer_service(peer).filter(|callee| *callee != service)
        } else {
            None
        };
        let duration = record.duration_nanos();
        if let Some(callee) = callee {
            let edge = self.entities.edge(service, callee);
            self.relate(RelationKind::Calls, service, callee, Some(edge), cell);
            self.name_peer(edge, record);
            self.push(edge, cell, record, duration, fact.origin, true, true);
            return edge;
        }
        let kind = if record.db_system.is_some() {
            EntityKind::Database
        } else {
            EntityKind::External
        };
        let peer_entity = self.entities.named(kind, peer);
        let edge = self.entities.edge(service, peer_entity);
        self.relate(RelationKind::Calls, service, peer_entity, Some(edge), cell);
        self.name_peer(peer_entity, record);
        self.name_peer(edge, record);
        self.push(
            peer_entity,
            cell,
            record,
            duration,
            fact.origin,
            false,
            true,
        );
        self.push(edge, cell, record, duration, fact.origin, false, true);
        peer_entity
    }

    /// The instrumented service a peer name refers to: the exact name, or the name without
    /// port, or its first DNS label (`payments:8080`, `payments.prod.svc.cluster.local`).
    fn peer_service(&mut self, peer: &str) -> Option<EntityIdx> {
        let services = self.entities.service_count();
        if services != self.services_known {
            self.peer_services.clear();
            self.services_known = services;
        }
        if let Some(known) = self.peer_services.get(peer) {
            return *known;
        }
        let lower = peer.to_ascii_lowercase();
        let without_port = lower
            .rsplit_once(':')
            .map_or(lower.as_str(), |(host, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    host
                } else {
                    lower.as_str()
                }
            });
        let first_label = without_port.split('.').next().unwrap_or(without_port);
        let found = [peer, lower.as_str(), without_port, first_label]
            .into_iter()
            .find_map(|name| self.entities.service_named(name));
        self.peer_services.insert(peer.to_string(), found);
        found
    }

    /// Records the samples of one request (entry span) of a service.
    fn request(&mut self, record: &SpanRecord, span: &Resolved, is_root: bool) {
        let service = span.service;
        let cell = span.cell;
        let mut targets: [EntityIdx; 5] = [service, NONE, NONE, NONE, NONE];
        let is_operation = record.kind.is_receiving()
            || (is_root && !matches!(record.kind, SpanKind::Client | SpanKind::Producer));
        if is_operation {
            targets[1] = self.entities.operation(service, &record.name);
        }
        if let Some(instance) = record.instance.as_deref() {
            let instance_entity = self.entities.instance(service, instance);
            targets[2] = instance_entity;
            self.relate(RelationKind::RunsOn, service, instance_entity, None, cell);
            if let Some(node) = record.node.as_deref() {
                let node_entity = self.entities.named(EntityKind::Node, node);
                targets[3] = node_entity;
                self.relate(
                    RelationKind::HostedOn,
                    instance_entity,
                    node_entity,
                    None,
                    cell,
                );
                // The latest cell wins; within a cell the smaller node name, so the placement
                // does not depend on the order traces are folded in.
                let placed = self
                    .instance_node
                    .entry(instance_entity)
                    .or_insert((node_entity, cell));
                let moved = cell > placed.1
                    || (cell == placed.1
                        && self.entities.get(node_entity).name < self.entities.get(placed.0).name);
                if moved {
                    *placed = (node_entity, cell);
                }
            }
        } else if let Some(node) = record.node.as_deref() {
            targets[3] = self.entities.named(EntityKind::Node, node);
        }
        if let Some(namespace) = record.namespace.as_deref() {
            targets[4] = self.entities.named(EntityKind::Namespace, namespace);
        }
        for target in targets.into_iter().filter(|&target| target != NONE) {
            self.push(
                target,
                cell,
                record,
                span.request_self_nanos,
                span.request_origin,
                false,
                false,
            );
        }
        if let Some(version) = record.version.as_deref() {
            let cells = self
                .versions
                .entry((service, version.to_string()))
                .or_default();
            let seen = cells.entry(cell).or_insert_with(|| VersionCell {
                first_seen_nanos: record.start_nanos,
                ..VersionCell::default()
            });
            seen.first_seen_nanos = seen.first_seen_nanos.min(record.start_nanos);
            if let Some(instance) = record.instance.as_deref() {
                if !seen.instances.iter().any(|known| known == instance) {
                    seen.instances.push(instance.to_string());
                }
            }
            seen.tally.add(span.request_origin, span.request_self_nanos);
            seen.examples
                .offer(1 + u64::from(span.request_origin), record.trace_id);
        }
    }

    /// An estimate of the heap held by the cells (the bulk of a fold).
    pub(crate) fn heap_bytes(&self) -> usize {
        let examples = |examples: &Examples| {
            [
                &examples.self_time,
                &examples.latency,
                &examples.origins,
                &examples.errors,
                &examples.unanswered,
                &examples.any,
            ]
            .into_iter()
            .map(|list| list.0.capacity() * std::mem::size_of::<(u64, [u8; 16])>())
            .sum::<usize>()
        };
        self.cells
            .values()
            .map(|acc| {
                std::mem::size_of::<((EntityIdx, u64), CellAcc)>()
                    + (acc.selfs.capacity() + acc.durations.capacity()) * 8
                    + examples(&acc.examples)
            })
            .sum()
    }

    /// Drops everything about cells before `first` or after `last`, and entities nothing
    /// refers to any more. Cells before `closed` get no more samples but from late spans:
    /// their sample vectors give back what doubling left unused.
    pub(crate) fn retain_cells(&mut self, first: u64, last: u64, closed: u64) {
        let keep = |cell: u64| cell >= first && cell <= last;
        self.cells.retain(|&(_, cell), acc| {
            if cell < closed && acc.selfs.capacity() > acc.selfs.len() {
                acc.selfs.shrink_to_fit();
                acc.durations.shrink_to_fit();
            }
            keep(cell)
        });
        self.relations.retain(|_, cell| *cell >= first);
        self.instance_node.retain(|_, (_, cell)| *cell >= first);
        self.versions.retain(|_, cells| {
            cells.retain(|&cell, _| keep(cell));
            !cells.is_empty()
        });
        let mut used = vec![false; self.entities.len()];
        for &(entity, _) in self.cells.keys() {
            used[entity as usize] = true;
        }
        for relation in self.relations.keys() {
            used[relation.from as usize] = true;
            used[relation.to as usize] = true;
            if let Some(edge) = relation.edge {
                used[edge as usize] = true;
            }
        }
        for (service, _) in self.versions.keys() {
            used[*service as usize] = true;
        }
        let kept = used.iter().filter(|&&used| used).count();
        // Rebuilding the table costs a pass over everything kept: only when half of it is dead.
        if kept * 2 + 64 > self.entities.len() {
            return;
        }
        let (table, remap) = self.entities.subset(&used, false);
        self.entities = table;
        let map = |idx: EntityIdx| remap[idx as usize];
        self.cells = std::mem::take(&mut self.cells)
            .into_iter()
            .map(|((entity, cell), acc)| ((map(entity), cell), acc))
            .collect();
        self.relations = std::mem::take(&mut self.relations)
            .into_iter()
            .map(|(relation, cell)| (relation.remapped(map), cell))
            .collect();
        self.versions = std::mem::take(&mut self.versions)
            .into_iter()
            .map(|((service, version), cells)| ((map(service), version), cells))
            .collect();
        self.instance_node = std::mem::take(&mut self.instance_node)
            .into_iter()
            .filter(|(instance, (node, _))| used[*instance as usize] && used[*node as usize])
            .map(|(instance, (node, cell))| (map(instance), (map(node), cell)))
            .collect();
        self.peers = std::mem::take(&mut self.peers)
            .into_iter()
            .filter(|(entity, _)| used[*entity as usize])
            .map(|(entity, peer)| (map(entity), peer))
            .collect();
        self.peer_services.clear();
        self.services_known = 0;
    }
}
