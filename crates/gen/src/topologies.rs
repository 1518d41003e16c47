//! The two incident topologies as data: `incident` (an online store) and `booking` (a travel
//! site). Operations are declared callees first; each names its calls in order.

use crate::topology::{
    CallSpec, Callee, DatabaseSpec, Endpoint, ExternalSpec, Semconv, TopicSpec, TopologySpec,
};

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
}
