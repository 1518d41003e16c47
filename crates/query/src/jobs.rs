//! Work split across queriers apart (issue 16, `docs/design/scale-out.md`). A query-frontend
//! with `query.queriers` sends each job to the querier with the fewest jobs in flight, and once
//! more to another when that one fails; a job no querier answers is run by the frontend itself,
//! so queriers add capacity, never a way to lose results.
//! - Search stage 1: each scan unit (a block, or one row group of an `andante-v2` block,
//!   `BlockHandle::scan_units`) is a job (`POST <url>/internal/query/v1/scan`, answered as
//!   scan-outcome v1, `andante_live::wire`). The frontend keeps the block order, the merge,
//!   stage 2 and early stop, so the answer is the one a single process gives.
//! - TraceQL metrics: each block is a job (`POST <url>/internal/query/v1/metrics`, answered as
//!   metrics-fold v1): the querier folds the block into an accumulator, the frontend merges the
//!   accumulators with its live traces' and finishes the series, as it does for blocks it folds
//!   itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use andante_block::v1::search::ScanOutcome;
use andante_live::wire::{decode_metrics_fold, decode_scan_outcome, MetricsFold};
use andante_model::{TenantId, TraceId};
use andante_traceql::Intervals;
use bytes::Bytes;
use uuid::Uuid;

/// One scan unit's stage-1 scan, as a querier apart is asked for it.
pub struct ScanJob<'a> {
    pub tenant: &'a TenantId,
    pub block_id: Uuid,
    /// One row group only, or the whole block. A querier from before the field scans the whole
    /// block: more candidates than asked, all of them true, so the answer is the same.
    pub row_group: Option<usize>,
    /// The TraceQL text: the querier parses it itself, so only text crosses the wire.
    pub text: &'a str,
    pub start: u64,
    pub end: u64,
}

/// One block's fold for one query of a TraceQL metrics expression, as a querier apart is asked
/// for it.
pub struct MetricsJob<'a> {
    pub tenant: &'a TenantId,
    pub block_id: Uuid,
    /// The whole expression's text and the query's place in `MetricsExpr::queries`: the querier
    /// parses it itself, so only text crosses the wire.
    pub text: &'a str,
    pub query_index: usize,
    pub intervals: Intervals,
    /// Exemplars the accumulator keeps (0: none).
    pub exemplars: usize,
    /// Most series the accumulator keeps.
    pub max_series: usize,
    /// Traces the frontend holds live that the block may also hold: counted by the frontend,
    /// whole, so the querier leaves them out (`MetricsFold::shared_ids`, `shared_spans`).
    pub live_ids: &'a [TraceId],
}

impl MetricsJob<'_> {
    /// The request body (JSON; `liveIds` as hex).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "tenant": self.tenant.as_str(),
            "block": self.block_id.to_string(),
            "q": self.text,
            "query": self.query_index,
            "first": self.intervals.first_nanos,
            "step": self.intervals.step_nanos,
            "count": self.intervals.count,
            "exemplars": self.exemplars,
            "maxSeries": self.max_series,
            "liveIds": self.live_ids.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
        })
    }
}

struct Target {
    url: String,
    in_flight: AtomicUsize,
}

/// The queriers of `query.queriers`.
pub struct Queriers {
    targets: Vec<Target>,
    /// Where the next tie among equally loaded queriers is broken, so idle ones take turns.
    turn: AtomicUsize,
    client: reqwest::Client,
}

/// Counts a job in flight on a target for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Queriers {
    /// `timeout` bounds each job: a querier that hangs costs one retry, not the query.
    pub fn new(urls: &[String], timeout: Duration) -> Result<Queriers, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(Queriers {
            targets: urls
                .iter()
                .map(|url| Target {
                    url: url.trim_end_matches('/').to_owned(),
                    in_flight: AtomicUsize::new(0),
                })
                .collect(),
            turn: AtomicUsize::new(0),
            client,
        })
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The targets to try, fewest jobs in flight first (ties from a rotating start): the first
    /// and one other.
    fn order(&self) -> Vec<&Target> {
        let count = self.targets.len();
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut order: Vec<(usize, usize)> = (0..count)
            .map(|n| {
                let index = (first + n) % count;
                (self.targets[index].in_flight.load(Ordering::Relaxed), index)
            })
            .collect();
        // Stable: among equals the rotation order stands.
        order.sort_by_key(|(load, _)| *load);
        order
            .into_iter()
            .take(2)
            .map(|(_, index)| &self.targets[index])
            .collect()
    }

    /// The outcome of `job` from a querier, or the failures of those tried (two at most).
    pub async fn scan(&self, job: &ScanJob<'_>) -> Result<ScanOutcome, String> {
        let mut body = serde_json::json!({
            "tenant": job.tenant.as_str(),
            "block": job.block_id.to_string(),
            "q": job.text,
            "start": job.start,
            "end": job.end,
        });
        if let Some(row_group) = job.row_group {
            body["rowGroup"] = row_group.into();
        }
        self.run(
            "/internal/query/v1/scan",
            body.to_string(),
            decode_scan_outcome,
        )
        .await
    }

    /// The fold of `job` from a querier, or the failures of those tried (two at most).
    pub async fn fold(&self, job: &MetricsJob<'_>) -> Result<MetricsFold, String> {
        let intervals = job.intervals;
        self.run(
            "/internal/query/v1/metrics",
            job.body().to_string(),
            move |answer| decode_metrics_fold(answer, intervals),
        )
        .await
    }

    /// Posts `body` to `path` of the least loaded querier, then of another when that one
    /// fails; the decoded answer, or both failures.
    async fn run<T>(
        &self,
        path: &str,
        body: String,
        decode: impl Fn(Bytes) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut failures = Vec::new();
        for target in self.order() {
            target.in_flight.fetch_add(1, Ordering::Relaxed);
            let _in_flight = InFlight(&target.in_flight);
            match self.send(target, path, body.clone()).await {
                Ok(answer) => match decode(answer) {
                    Ok(decoded) => return Ok(decoded),
                    Err(error) => failures.push(format!("querier {}: {error}", target.url)),
                },
                Err(error) => failures.push(format!("querier {}: {error}", target.url)),
            }
        }
        Err(failures.join("; "))
    }

    async fn send(&self, target: &Target, path: &str, body: String) -> Result<Bytes, String> {
        let response = self
            .client
            .post(format!("{}{path}", target.url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|error| error.to_string())?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            return Err(format!("{status} {text}"));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_loaded_querier_goes_first_and_idle_ones_take_turns() {
        let urls: Vec<String> = (0..3).map(|n| format!("http://q{n}:3200/")).collect();
        let queriers = Queriers::new(&urls, Duration::from_secs(1)).unwrap();
        let firsts: Vec<String> = (0..3).map(|_| queriers.order()[0].url.clone()).collect();
        assert_eq!(
            firsts,
            ["http://q0:3200", "http://q1:3200", "http://q2:3200"]
        );
        queriers.targets[0].in_flight.store(2, Ordering::Relaxed);
        queriers.targets[1].in_flight.store(1, Ordering::Relaxed);
        for _ in 0..3 {
            let order: Vec<&str> = queriers.order().iter().map(|t| t.url.as_str()).collect();
            assert_eq!(order, ["http://q2:3200", "http://q1:3200"]);
        }
    }

    #[tokio::test]
    async fn a_job_no_querier_answers_names_each_failure() {
        let urls = vec![
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2".to_owned(),
        ];
        let queriers = Queriers::new(&urls, Duration::from_secs(2)).unwrap();
        let tenant = TenantId::new("acme").unwrap();
        let job = ScanJob {
            tenant: &tenant,
            block_id: Uuid::nil(),
            row_group: None,
            text: "{ }",
            start: 0,
            end: u64::MAX,
        };
        let error = queriers.scan(&job).await.unwrap_err();
        assert!(error.contains("querier http://127.0.0.1:1"), "{error}");
        assert!(error.contains("querier http://127.0.0.1:2"), "{error}");
        assert!(queriers
            .targets
            .iter()
            .all(|t| t.in_flight.load(Ordering::Relaxed) == 0));
    }
}
