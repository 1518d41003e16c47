//! Entities and their ids. Every entity of a window is interned once into an
//! [`EntityTable`]; analysis code passes [`EntityIdx`] around and formats ids only for output.
//!
//! Ids: `service:<name>`, `operation:<service>:<span name>`, `instance:<service>:<instance>`,
//! `node:<name>`, `namespace:<name>`, `database:<name>`, `external:<name>`, `topic:<name>`,
//! `edge:<caller>-><callee>`.

use std::collections::HashMap;

pub(crate) type EntityIdx = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EntityKind {
    Service,
    Operation,
    Instance,
    Node,
    Namespace,
    Database,
    External,
    Topic,
    Edge,
}

impl EntityKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EntityKind::Service => "service",
            EntityKind::Operation => "operation",
            EntityKind::Instance => "instance",
            EntityKind::Node => "node",
            EntityKind::Namespace => "namespace",
            EntityKind::Database => "database",
            EntityKind::External => "external",
            EntityKind::Topic => "topic",
            EntityKind::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Entity {
    pub kind: EntityKind,
    /// Display name: the service, span name, instance, peer, or `caller->callee` for edges.
    pub name: String,
    /// The owning service, for operations, instances and edges (the caller).
    pub service: Option<EntityIdx>,
    /// For edges: the callee (a service, database or external entity).
    pub callee: Option<EntityIdx>,
    pub id: String,
}

/// Interned entities, with lookups by borrowed keys so hot loops do not allocate.
#[derive(Debug, Default)]
pub(crate) struct EntityTable {
    entities: Vec<Entity>,
    by_id: HashMap<String, EntityIdx>,
    services: HashMap<String, EntityIdx>,
    operations: HashMap<EntityIdx, HashMap<String, EntityIdx>>,
    instances: HashMap<EntityIdx, HashMap<String, EntityIdx>>,
    named: HashMap<EntityKind, HashMap<String, EntityIdx>>,
    edges: HashMap<(EntityIdx, EntityIdx), EntityIdx>,
}

impl EntityTable {
    pub(crate) fn len(&self) -> usize {
        self.entities.len()
    }

    pub(crate) fn get(&self, idx: EntityIdx) -> &Entity {
        &self.entities[idx as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (EntityIdx, &Entity)> {
        self.entities
            .iter()
            .enumerate()
            .map(|(idx, entity)| (idx as EntityIdx, entity))
    }

    pub(crate) fn lookup(&self, id: &str) -> Option<EntityIdx> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn service_count(&self) -> usize {
        self.services.len()
    }

    pub(crate) fn service_named(&self, name: &str) -> Option<EntityIdx> {
        self.services.get(name).copied()
    }

    /// The instance called `name`, of whichever service (pod names and instance ids are
    /// unique across services; the lowest index wins if they are not).
    pub(crate) fn instance_named(&self, name: &str) -> Option<EntityIdx> {
        self.instances
            .values()
            .filter_map(|named| named.get(name).copied())
            .min()
    }

    /// The service name of an entity's owner (or the service itself).
    pub(crate) fn service_name(&self, idx: EntityIdx) -> Option<&str> {
        let entity = self.get(idx);
        match entity.kind {
            EntityKind::Service => Some(entity.name.as_str()),
            _ => entity
                .service
                .map(|service| self.get(service).name.as_str()),
        }
    }

    fn push(&mut self, entity: Entity) -> EntityIdx {
        let idx = self.entities.len() as EntityIdx;
        self.by_id.insert(entity.id.clone(), idx);
        self.entities.push(entity);
        idx
    }

    pub(crate) fn service(&mut self, name: &str) -> EntityIdx {
        if let Some(found) = self.services.get(name) {
            return *found;
        }
        let idx = self.push(Entity {
            kind: EntityKind::Service,
            name: name.to_string(),
            service: None,
            callee: None,
            id: format!("service:{name}"),
        });
        self.services.insert(name.to_string(), idx);
        idx
    }

    pub(crate) fn operation(&mut self, service: EntityIdx, name: &str) -> EntityIdx {
        if let Some(found) = self.operations.get(&service).and_then(|ops| ops.get(name)) {
            return *found;
        }
        let id = format!("operation:{}:{name}", self.get(service).name);
        let idx = self.push(Entity {
            kind: EntityKind::Operation,
            name: name.to_string(),
            service: Some(service),
            callee: None,
            id,
        });
        self.operations
            .entry(service)
            .or_default()
            .insert(name.to_string(), idx);
        idx
    }

    pub(crate) fn instance(&mut self, service: EntityIdx, name: &str) -> EntityIdx {
        if let Some(found) = self.instances.get(&service).and_then(|map| map.get(name)) {
            return *found;
        }
        let id = format!("instance:{}:{name}", self.get(service).name);
        let idx = self.push(Entity {
            kind: EntityKind::Instance,
            name: name.to_string(),
            service: Some(service),
            callee: None,
            id,
        });
        self.instances
            .entry(service)
            .or_default()
            .insert(name.to_string(), idx);
        idx
    }

    /// Nodes, namespaces, databases, externals and topics: entities named by one string.
    pub(crate) fn named(&mut self, kind: EntityKind, name: &str) -> EntityIdx {
        debug_assert!(matches!(
            kind,
            EntityKind::Node
                | EntityKind::Namespace
                | EntityKind::Database
                | EntityKind::External
                | EntityKind::Topic
        ));
        if let Some(found) = self.named.get(&kind).and_then(|map| map.get(name)) {
            return *found;
        }
        let idx = self.push(Entity {
            kind,
            name: name.to_string(),
            service: None,
            callee: None,
            id: format!("{}:{name}", kind.as_str()),
        });
        self.named
            .entry(kind)
            .or_default()
            .insert(name.to_string(), idx);
        idx
    }

    pub(crate) fn edge(&mut self, caller: EntityIdx, callee: EntityIdx) -> EntityIdx {
        if let Some(found) = self.edges.get(&(caller, callee)) {
            return *found;
        }
        let name = format!("{}->{}", self.get(caller).name, self.get(callee).name);
        let idx = self.push(Entity {
            kind: EntityKind::Edge,
            id: format!("edge:{name}"),
            name,
            service: Some(caller),
            callee: Some(callee),
        });
        self.edges.insert((caller, callee), idx);
        idx
    }

    /// A table of the `used` entities and those they name (owning service, callee), with the
    /// old index → new index map (`u32::MAX` for dropped ones). `by_id` orders the kept
    /// entities by id, so that a table does not depend on the order spans came in.
    pub(crate) fn subset(&self, used: &[bool], by_id: bool) -> (EntityTable, Vec<EntityIdx>) {
        let mut keep: Vec<bool> = used.to_vec();
        keep.resize(self.entities.len(), false);
        for (idx, entity) in self.entities.iter().enumerate() {
            if keep[idx] {
                for named in [entity.service, entity.callee].into_iter().flatten() {
                    keep[named as usize] = true;
                }
            }
        }
        let mut order: Vec<EntityIdx> = (0..self.entities.len() as EntityIdx)
            .filter(|&idx| keep[idx as usize])
            .collect();
        if by_id {
            order.sort_by(|&a, &b| self.get(a).id.cmp(&self.get(b).id));
        }
        let mut remap = vec![EntityIdx::MAX; self.entities.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as EntityIdx;
        }
        let mut table = EntityTable::default();
        for &old in &order {
            let mut entity = self.get(old).clone();
            entity.service = entity.service.map(|service| remap[service as usize]);
            entity.callee = entity.callee.map(|callee| remap[callee as usize]);
            table.insert(entity);
        }
        (table, remap)
    }

    /// Adds an entity whose owner and callee are already in the table, with its lookups.
    fn insert(&mut self, entity: Entity) {
        let (kind, name, service, callee) = (
            entity.kind,
            entity.name.clone(),
            entity.service,
            entity.callee,
        );
        let idx = self.push(entity);
        match (kind, service, callee) {
            (EntityKind::Service, _, _) => {
                self.services.insert(name, idx);
            }
            (EntityKind::Operation, Some(service), _) => {
                self.operations
                    .entry(service)
                    .or_default()
                    .insert(name, idx);
            }
            (EntityKind::Instance, Some(service), _) => {
                self.instances.entry(service).or_default().insert(name, idx);
            }
            (EntityKind::Edge, Some(caller), Some(callee)) => {
                self.edges.insert((caller, callee), idx);
            }
            _ => {
                self.named.entry(kind).or_default().insert(name, idx);
            }
        }
    }

    /// Whether `entity` is `selected`, or part of it: a service's operations and instances,
    /// and the edges it calls or is called through.
    pub(crate) fn belongs_to(&self, entity: EntityIdx, selected: EntityIdx) -> bool {
        if entity == selected {
            return true;
        }
        if self.get(selected).kind != EntityKind::Service {
            return false;
        }
        let candidate = self.get(entity);
        match candidate.kind {
            EntityKind::Operation | EntityKind::Instance => candidate.service == Some(selected),
            EntityKind::Edge => {
                candidate.service == Some(selected) || candidate.callee == Some(selected)
            }
            _ => false,
        }
    }
}
