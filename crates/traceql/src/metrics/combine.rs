//! Operators on finished series: arithmetic (`(a) / (b) * 100`), comparisons that keep samples
//! (`… > 5`) and ranks (`… | topk(3)`).

use super::{apply_stage, passes, LabelValue, MetricsOp, MetricsSeries, SecondStage};

/// One side of an operator while it is being evaluated.
#[derive(Debug, Clone)]
pub enum Operand {
    Series(Vec<MetricsSeries>),
    Number(f64),
}

fn name_of(series: &MetricsSeries) -> Option<String> {
    series
        .labels
        .iter()
        .find(|(key, _)| key == "__name__")
        .and_then(|(_, value)| match value {
            LabelValue::String(text) => Some(text.clone()),
            _ => None,
        })
}

/// Applies `op`. Arithmetic goes sample by sample: series pair when their labels other than
/// `__name__` are equal, a pair's name becomes `(lhs op rhs)`, a sample missing on one side gives
/// NaN, as in Tempo, and series with no partner are dropped. A filter keeps the samples of the
/// series side that pass the comparison with the other side; a rank keeps, at each timestamp,
/// the `rhs` highest or lowest series of `lhs`. Series a filter or a rank leaves without samples
/// are dropped.
pub fn combine(op: MetricsOp, lhs: Operand, rhs: Operand) -> Operand {
    match op {
        MetricsOp::Filter(comparison) => filter(comparison, lhs, rhs),
        MetricsOp::TopK | MetricsOp::BottomK => match (lhs, rhs) {
            (Operand::Series(mut series), Operand::Number(k)) => {
                // The parser gives a whole k ≥ 1; anything else keeps nothing.
                let k = if k >= 1.0 { k as usize } else { 0 };
                let stage = if op == MetricsOp::TopK {
                    SecondStage::TopK(k)
                } else {
                    SecondStage::BottomK(k)
                };
                apply_stage(&stage, &mut series);
                series.retain(|s| s.samples.iter().any(Option::is_some));
                Operand::Series(series)
            }
            (lhs, _) => lhs,
        },
        MetricsOp::Add | MetricsOp::Sub | MetricsOp::Mul | MetricsOp::Div => {
            arithmetic(op, lhs, rhs)
        }
    }
}

fn arithmetic(op: MetricsOp, lhs: Operand, rhs: Operand) -> Operand {
    let scalar =
        |series: Vec<MetricsSeries>, number: f64, number_first: bool| -> Vec<MetricsSeries> {
            series
                .into_iter()
                .map(|mut s| {
                    for sample in s.samples.iter_mut() {
                        *sample = sample.map(|v| {
                            if number_first {
                                op.apply(number, v)
                            } else {
                                op.apply(v, number)
                            }
                        });
                    }
                    s.exemplars.clear();
                    s
                })
                .collect()
        };
    match (lhs, rhs) {
        (Operand::Number(a), Operand::Number(b)) => Operand::Number(op.apply(a, b)),
        (Operand::Series(series), Operand::Number(b)) => Operand::Series(scalar(series, b, false)),
        (Operand::Number(a), Operand::Series(series)) => Operand::Series(scalar(series, a, true)),
        (Operand::Series(left), Operand::Series(right)) => {
            Operand::Series(pair(op, &left, &right, |a, b| match (a, b) {
                (None, None) => None,
                (Some(a), Some(b)) => Some(op.apply(a, b)),
                _ => Some(f64::NAN),
            }))
        }
    }
}

fn filter(comparison: crate::ast::BinaryOp, lhs: Operand, rhs: Operand) -> Operand {
    let keep =
        |mut series: Vec<MetricsSeries>, passes: &dyn Fn(f64) -> bool| -> Vec<MetricsSeries> {
            for s in &mut series {
                for sample in &mut s.samples {
                    if sample.is_some_and(|v| !passes(v)) {
                        *sample = None;
                    }
                }
                s.exemplars.retain(|e| passes(e.value));
            }
            series.retain(|s| s.samples.iter().any(Option::is_some));
            series
        };
    match (lhs, rhs) {
        (Operand::Series(series), Operand::Number(threshold)) => {
            Operand::Series(keep(series, &|v| passes(comparison, v, threshold)))
        }
        (Operand::Number(value), Operand::Series(series)) => {
            Operand::Series(keep(series, &|v| passes(comparison, value, v)))
        }
        (Operand::Number(a), Operand::Number(b)) => {
            Operand::Number(MetricsOp::Filter(comparison).apply(a, b))
        }
        (Operand::Series(left), Operand::Series(right)) => {
            let op = MetricsOp::Filter(comparison);
            let mut kept = pair(op, &left, &right, |a, b| {
                a.zip(b)
                    .filter(|(a, b)| passes(comparison, *a, *b))
                    .map(|(a, _)| a)
            });
            kept.retain(|s| s.samples.iter().any(Option::is_some));
            Operand::Series(kept)
        }
    }
}

/// Series of both sides with equal labels (other than `__name__`), sample by sample.
fn pair(
    op: MetricsOp,
    left: &[MetricsSeries],
    right: &[MetricsSeries],
    sample: impl Fn(Option<f64>, Option<f64>) -> Option<f64>,
) -> Vec<MetricsSeries> {
    let key = |s: &MetricsSeries| {
        s.labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for l in left {
        let Some(r) = right.iter().find(|r| key(r) == key(l)) else {
            continue;
        };
        let samples = l
            .samples
            .iter()
            .zip(&r.samples)
            .map(|(a, b)| sample(*a, *b))
            .collect();
        let mut labels = key(l);
        if name_of(l).is_some() || name_of(r).is_some() {
            let name = format!(
                "({} {} {})",
                name_of(l).unwrap_or_default(),
                op.symbol(),
                name_of(r).unwrap_or_default()
            );
            labels.push(("__name__".to_owned(), LabelValue::String(name)));
        }
        out.push(MetricsSeries {
            labels,
            samples,
            exemplars: Vec::new(),
        });
    }
    out
}
