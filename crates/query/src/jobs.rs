//! Search stage 1 split across queriers apart (issue 16, `docs/design/scale-out.md`): a
//! query-frontend with `query.queriers` sends each scan unit (a block, or one row group of an
//! `andante-v2` block, `BlockHandle::scan_units`) as a job
//! (`POST <url>/internal/query/v1/scan`, answered as scan-outcome v1, `andante_live::wire`) to the
//! querier with the fewest jobs in flight, and once more to another when that one fails. The
//! frontend keeps everything else: the block order, the merge, stage 2 and early stop, so the
//! answer is the one a single process gives. A job no querier answers is scanned by the frontend
//! itself: queriers add capacity, never a way to lose results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use andante_block::v1::search::ScanOutcome;
use andante_live::wire::decode_scan_outcome;
use andante_model::TenantId;
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

    /// The outcome of `job` from a querier, or every querier's failure.
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
        let body = body.to_string();
        let mut failures = Vec::new();
        for target in self.order() {
            target.in_flight.fetch_add(1, Ordering::Relaxed);
            let _in_flight = InFlight(&target.in_flight);
            match self.send(target, body.clone()).await {
                Ok(outcome) => return Ok(outcome),
                Err(error) => failures.push(format!("querier {}: {error}", target.url)),
            }
        }
        Err(failures.join("; "))
    }

    async fn send(&self, target: &Target, body: String) -> Result<ScanOutcome, String> {
        let response = self
            .client
            .post(format!("{}/internal/query/v1/scan", target.url))
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
        decode_scan_outcome(answer)
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
