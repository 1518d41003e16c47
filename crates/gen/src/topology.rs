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

fn call(callee: Callee) -> CallSpec {
    CallSpec {
        callee,
        probability: 1.0,
        fallback: false,
    }
}
fn op(operation: usize) -> CallSpec {
    call(Callee::Operation(operation))
}
fn db(database: usize, operation: &'static str, table: &'static str) -> CallSpec {
    call(Callee::Database {
        database,
        operation,
        table,
    })
}
fn sometimes(mut spec: CallSpec, probability: f64) -> CallSpec {
    spec.probability = probability;
    spec
}
fn with_fallback(mut spec: CallSpec) -> CallSpec {
    spec.fallback = true;
    spec
}

impl TopologySpec {
    fn empty(name: &'static str, namespace: &'static str, nodes: Vec<&'static str>) -> Self {
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

    fn service(
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

    fn operation(
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

    fn http(
        &mut self,
        service: usize,
        method: &'static str,
        route: &'static str,
        self_ms: f64,
        calls: Vec<CallSpec>,
    ) -> usize {
        self.operation(service, Endpoint::Http { method, route }, self_ms, calls)
    }

    fn grpc(
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

    /// An online store (the `incident` topology).
    pub fn store() -> TopologySpec {
        let mut t = TopologySpec::empty(
            "incident",
            "store",
            vec!["worker-a", "worker-b", "worker-c"],
        );
        let web = t.service("web", Semconv::New, "nodejs", 3);
        let api = t.service("api-gateway", Semconv::Old, "go", 2);
        let catalog = t.service("catalog", Semconv::New, "java", 3);
        let cart = t.service("cart", Semconv::New, "dotnet", 2);
        let checkout = t.service("checkout", Semconv::New, "go", 3);
        let payment = t.service("payment", Semconv::Old, "java", 2);
        let inventory = t.service("inventory", Semconv::Old, "python", 2);
        let recommendation = t.service("recommendation", Semconv::Old, "python", 2);
        let fulfillment = t.service("fulfillment", Semconv::New, "go", 2);
        let notification = t.service("notification", Semconv::Old, "nodejs", 2);
        t.databases = vec![
            DatabaseSpec {
                name: "catalog",
                system: "postgresql",
                namespace: Some("catalog"),
                address: "catalog-postgres.store.svc",
                port: 5432,
                latency_ms: 3.0,
                timeout_ms: 3000.0,
            },
            DatabaseSpec {
                name: "orders",
                system: "mysql",
                namespace: Some("orders"),
                address: "orders-mysql.store.svc",
                port: 3306,
                latency_ms: 4.0,
                timeout_ms: 2500.0,
            },
            DatabaseSpec {
                name: "store-cache",
                system: "redis",
                namespace: None,
                address: "redis-master.store.svc",
                port: 6379,
                latency_ms: 0.4,
                timeout_ms: 1000.0,
            },
        ];
        let (catalog_db, orders_db, cache) = (0, 1, 2);
        t.externals = vec![ExternalSpec {
            name: "payments-provider",
            address: "api.payments-provider.example",
            latency_ms: 60.0,
            timeout_ms: 4000.0,
        }];
        t.topics = vec![TopicSpec {
            name: "orders",
            system: "kafka",
            broker: "kafka.store.svc",
        }];

        let get_product = t.grpc(
            catalog,
            "store.Catalog",
            "GetProduct",
            2.0,
            vec![
                db(cache, "GET", "product"),
                sometimes(db(catalog_db, "SELECT", "products"), 0.4),
            ],
        );
        let list_products = t.grpc(
            catalog,
            "store.Catalog",
            "ListProducts",
            3.0,
            vec![db(catalog_db, "SELECT", "products")],
        );
        let recommend = t.grpc(
            recommendation,
            "store.Recommendation",
            "ListRecommendations",
            6.0,
            vec![db(cache, "MGET", "recs"), op(list_products)],
        );
        let add_item = t.http(
            cart,
            "POST",
            "/cart/items",
            1.5,
            vec![op(get_product), db(cache, "HSET", "cart")],
        );
        let get_cart = t.http(
            cart,
            "GET",
            "/cart",
            1.0,
            vec![db(cache, "HGETALL", "cart")],
        );
        let reserve = t.grpc(
            inventory,
            "store.Inventory",
            "Reserve",
            2.5,
            vec![db(catalog_db, "UPDATE", "stock")],
        );
        let charge = t.grpc(
            payment,
            "store.Payment",
            "Charge",
            3.0,
            vec![call(Callee::External {
                external: 0,
                method: "POST",
                path: "/v1/charges",
            })],
        );
        let notify = t.http(notification, "POST", "/notify", 2.0, vec![]);
        let ship = t.operation(
            fulfillment,
            Endpoint::Consume { topic: 0 },
            3.0,
            vec![db(orders_db, "UPDATE", "orders"), op(notify)],
        );
        let place_order = t.grpc(
            checkout,
            "store.Checkout",
            "PlaceOrder",
            4.0,
            vec![
                op(get_cart),
                op(reserve),
                op(charge),
                db(orders_db, "INSERT", "orders"),
                call(Callee::Publish {
                    topic: 0,
                    consumer: ship,
                }),
            ],
        );

        let api_home = t.http(api, "GET", "/api/home", 1.0, vec![op(recommend)]);
        let api_product = t.http(
            api,
            "GET",
            "/api/products/{id}",
            1.0,
            vec![op(get_product), with_fallback(op(recommend))],
        );
        let api_cart = t.http(api, "POST", "/api/cart", 1.0, vec![op(add_item)]);
        let api_checkout = t.http(api, "POST", "/api/checkout", 1.5, vec![op(place_order)]);

        let home = t.http(web, "GET", "/", 4.0, vec![op(api_home)]);
        let product = t.http(web, "GET", "/product/{id}", 5.0, vec![op(api_product)]);
        let cart_page = t.http(web, "POST", "/cart", 3.0, vec![op(api_cart)]);
        let checkout_page = t.http(web, "POST", "/checkout", 4.0, vec![op(api_checkout)]);
        for page in [home, product] {
            t.operations[page].internal = Some("render page");
        }
        t.entries = vec![
            (home, 35),
            (product, 35),
            (cart_page, 15),
            (checkout_page, 15),
        ];
        t
    }

    /// A travel booking site (the `booking` topology): other names, depths and conventions.
    pub fn booking() -> TopologySpec {
        let mut t = TopologySpec::empty(
            "booking",
            "travel",
            vec!["gke-pool-1-7f2k", "gke-pool-1-9x4c", "gke-pool-2-b81m"],
        );
        let edge = t.service("edge-proxy", Semconv::Old, "go", 3);
        let search = t.service("search", Semconv::New, "rust", 3);
        let pricing = t.service("pricing", Semconv::Old, "java", 2);
        let availability = t.service("availability", Semconv::New, "go", 3);
        let booking = t.service("booking", Semconv::New, "java", 2);
        let billing = t.service("billing", Semconv::Old, "dotnet", 2);
        let loyalty = t.service("loyalty", Semconv::New, "python", 2);
        let notifier = t.service("notifier", Semconv::Old, "nodejs", 2);
        t.databases = vec![
            DatabaseSpec {
                name: "bookings",
                system: "postgresql",
                namespace: Some("bookings"),
                address: "bookings-db.travel.svc",
                port: 5432,
                latency_ms: 5.0,
                timeout_ms: 3000.0,
            },
            DatabaseSpec {
                name: "hotels",
                system: "mongodb",
                namespace: Some("hotels"),
                address: "mongo-0.mongo.travel.svc",
                port: 27017,
                latency_ms: 2.5,
                timeout_ms: 2000.0,
            },
            DatabaseSpec {
                name: "session-cache",
                system: "redis",
                namespace: None,
                address: "redis.travel.svc",
                port: 6379,
                latency_ms: 0.3,
                timeout_ms: 800.0,
            },
        ];
        let (bookings_db, hotels_db, cache) = (0, 1, 2);
        t.externals = vec![ExternalSpec {
            name: "gds-api",
            address: "ws.gds.example.net",
            latency_ms: 45.0,
            timeout_ms: 5000.0,
        }];
        t.topics = vec![TopicSpec {
            name: "booking-events",
            system: "rabbitmq",
            broker: "rabbitmq.travel.svc",
        }];

        let quote = t.grpc(
            pricing,
            "travel.Pricing",
            "Quote",
            3.0,
            vec![
                db(cache, "GET", "rates"),
                sometimes(db(hotels_db, "find", "rates"), 0.3),
            ],
        );
        let check = t.grpc(
            availability,
            "travel.Availability",
            "Check",
            2.0,
            vec![call(Callee::External {
                external: 0,
                method: "GET",
                path: "/v2/availability",
            })],
        );
        let hold = t.grpc(
            availability,
            "travel.Availability",
            "Hold",
            2.0,
            vec![call(Callee::External {
                external: 0,
                method: "POST",
                path: "/v2/holds",
            })],
        );
        let find = t.http(
            search,
            "GET",
            "/search",
            5.0,
            vec![db(hotels_db, "find", "hotels"), op(check), op(quote)],
        );
        let details = t.http(
            search,
            "GET",
            "/hotels/{id}",
            3.0,
            vec![db(hotels_db, "findOne", "hotels"), op(quote)],
        );
        let charge = t.grpc(
            billing,
            "travel.Billing",
            "Charge",
            4.0,
            vec![db(bookings_db, "INSERT", "payments")],
        );
        let accrue = t.grpc(
            loyalty,
            "travel.Loyalty",
            "Accrue",
            1.5,
            vec![db(cache, "INCRBY", "points")],
        );
        let send = t.operation(
            notifier,
            Endpoint::Consume { topic: 0 },
            2.5,
            vec![sometimes(op(accrue), 0.5)],
        );
        let create = t.http(
            booking,
            "POST",
            "/bookings",
            4.0,
            vec![
                op(hold),
                op(charge),
                with_fallback(op(accrue)),
                db(bookings_db, "INSERT", "bookings"),
                call(Callee::Publish {
                    topic: 0,
                    consumer: send,
                }),
            ],
        );
        let session = db(cache, "GET", "session");
        let search_page = t.http(edge, "GET", "/search", 1.0, vec![session, op(find)]);
        let hotel_page = t.http(
            edge,
            "GET",
            "/hotel/{id}",
            1.0,
            vec![db(cache, "GET", "session"), op(details)],
        );
        let book_page = t.http(
            edge,
            "POST",
            "/book",
            1.0,
            vec![db(cache, "GET", "session"), op(create)],
        );
        t.operations[find].internal = Some("rank results");
        t.entries = vec![(search_page, 55), (hotel_page, 25), (book_page, 20)];
        t
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
