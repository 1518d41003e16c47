//! Sending generated traces over OTLP/gRPC or OTLP/HTTP at a steady rate.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::io::AsyncWriteExt;

use crate::scenario::ScenarioArgs;
use crate::timeline::{Source, Trace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

/// Options of `andante gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// OTLP endpoint: `http://host:4317` for gRPC, `http://host:4318` for HTTP (`/v1/traces` is added).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Traces per second (each has 6 to 20 spans, about 11 on average).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// How long to send, in seconds; 0 sends until interrupted.
    #[arg(long, default_value_t = 0)]
    pub duration_secs: u64,
    /// Stop after this many traces (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub traces: u64,
    /// Traces per export request.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Export requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Sent as `X-Scope-OrgID` when set.
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Appends `trace_id_hex span_count` for every acknowledged trace to this file.
    #[arg(long)]
    pub acked_file: Option<PathBuf>,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

#[derive(Debug, Default, Clone)]
pub struct GenReport {
    pub traces: u64,
    pub spans: u64,
    pub failed_requests: u64,
    pub rejected_spans: u64,
    pub elapsed: Duration,
}

enum Sender {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    Http(reqwest::Client, String),
}

impl Sender {
    async fn connect(args: &GenArgs) -> anyhow::Result<Sender> {
        Ok(match args.protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())
                    .context("invalid endpoint")?
                    .connect_lazy();
                Sender::Grpc(TraceServiceClient::new(channel))
            }
            Protocol::Http => {
                let url = format!("{}/v1/traces", args.endpoint.trim_end_matches('/'));
                Sender::Http(reqwest::Client::new(), url)
            }
        })
    }

    async fn send(
        &self,
        request: ExportTraceServiceRequest,
        tenant: Option<&str>,
    ) -> Result<u64, String> {
        match self {
            Sender::Grpc(client) => {
                let mut grpc_request = tonic::Request::new(request);
                if let Some(tenant) = tenant {
                    let value = tenant.parse().map_err(|_| "invalid tenant".to_owned())?;
                    grpc_request.metadata_mut().insert("x-scope-orgid", value);
                }
                let response = client
                    .clone()
                    .export(grpc_request)
                    .await
                    .map_err(|status| status.to_string())?;
                Ok(rejected(response.into_inner()))
            }
            Sender::Http(client, url) => {
                let mut builder = client
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(request.encode_to_vec());
                if let Some(tenant) = tenant {
                    builder = builder.header("x-scope-orgid", tenant);
                }
                let response = builder.send().await.map_err(|error| error.to_string())?;
                let status = response.status();
                let body = response.bytes().await.map_err(|error| error.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
                }
                let decoded = ExportTraceServiceResponse::decode(body.as_ref())
                    .map_err(|error| error.to_string())?;
                Ok(rejected(decoded))
            }
        }
    }
}

fn rejected(response: ExportTraceServiceResponse) -> u64 {
    response
        .partial_success
        .map(|p| p.rejected_spans.max(0) as u64)
        .unwrap_or(0)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sends traffic as configured and returns what was acknowledged.
pub async fn run(args: GenArgs) -> anyhow::Result<GenReport> {
    let sender = Arc::new(Sender::connect(&args).await?);
    let source = Source::new(&args, now_nanos())?;
    if let Some(path) = &args.scenario.truth_file {
        let truth = source
            .truth_json()
            .context("`--truth-file` needs an incident topology")?;
        let text = serde_json::to_string_pretty(&truth).context("encode ground truth")?;
        tokio::fs::write(path, text + "\n")
            .await
            .with_context(|| format!("failed to write truth file `{}`", path.display()))?;
    }
    if let Some(plan) = source.plan() {
        tracing::info!(scenario = plan.scenario.name(), fault = ?plan.fault, "scenario");
    }
    let mut batches = source.batches();
    let batch = args.batch.max(1);
    let interval = Duration::from_secs_f64(batch as f64 / args.rate.max(0.001));
    let started = Instant::now();
    let deadline = (args.duration_secs > 0 && !source.is_backfill())
        .then(|| started + Duration::from_secs(args.duration_secs));
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let counters = Arc::new([
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ]);
    let acked_file = match &args.acked_file {
        Some(path) => Some(Arc::new(tokio::sync::Mutex::new(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .context("open acked file")?,
        ))),
        None => None,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) || batches.exhausted() {
            break;
        }
        let traces: Vec<Trace> = if source.is_backfill() {
            match batches.next_backfill() {
                Some(traces) => traces,
                None => break,
            }
        } else {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::signal::ctrl_c() => break,
            }
            batches.next_live(now_nanos)
        };
        let mut request = ExportTraceServiceRequest::default();
        let mut ids = Vec::with_capacity(traces.len());
        for (trace_id, resource_spans) in traces {
            let spans: usize = resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            ids.push((hex::encode(trace_id), spans));
            request.resource_spans.extend(resource_spans);
        }
        if ids.is_empty() {
            continue;
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .context("semaphore closed")?;
        let (sender, counters, tenant, acked_file) = (
            sender.clone(),
            counters.clone(),
            args.tenant.clone(),
            acked_file.clone(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            match sender.send(request, tenant.as_deref()).await {
                Ok(rejected_spans) => {
                    let spans: usize = ids.iter().map(|(_, n)| n).sum();
                    counters[0].fetch_add(ids.len() as u64, Ordering::Relaxed);
                    counters[1].fetch_add(spans as u64, Ordering::Relaxed);
                    counters[3].fetch_add(rejected_spans, Ordering::Relaxed);
                    if let Some(file) = acked_file {
                        let lines: String =
                            ids.iter().map(|(id, n)| format!("{id} {n}\n")).collect();
                        let mut file = file.lock().await;
                        // Tests trust this file as the list of acknowledged traces: say when it is short.
                        let written = async {
                            file.write_all(lines.as_bytes()).await?;
                            file.flush().await
                        }
                        .await;
                        if let Err(error) = written {
                            tracing::error!(%error, "failed to record acknowledged trace IDs");
                        }
                    }
                }
                Err(error) => {
                    counters[2].fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "export failed");
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    Ok(GenReport {
        traces: counters[0].load(Ordering::Relaxed),
        spans: counters[1].load(Ordering::Relaxed),
        failed_requests: counters[2].load(Ordering::Relaxed),
        rejected_spans: counters[3].load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}
