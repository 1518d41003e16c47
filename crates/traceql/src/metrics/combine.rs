//! Arithmetic on finished series: `(a) / (b) * 100`.

use super::{ArithmeticOp, LabelValue, MetricsSeries};

/// One side of an arithmetic operation while it is being evaluated.
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

/// Applies `op` sample by sample. Series pair when their labels other than `__name__` are
/// equal; a pair's name becomes `(lhs op rhs)`. A sample missing on one side gives NaN, as in
/// Tempo; series with no partner are dropped.
pub fn combine(op: ArithmeticOp, lhs: Operand, rhs: Operand) -> Operand {
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
            let key = |s: &MetricsSeries| {
                s.labels
                    .iter()
                    .filter(|(k, _)| k != "__name__")
                    .cloned()
                    .collect::<Vec<_>>()
            };
            let mut out = Vec::new();
            for l in &left {
                let Some(r) = right.iter().find(|r| key(r) == key(l)) else {
                    continue;
                };
                let samples = l
                    .samples
                    .iter()
                    .zip(&r.samples)
                    .map(|(a, b)| match (a, b) {
                        (None, None) => None,
                        (Some(a), Some(b)) => Some(op.apply(*a, *b)),
                        _ => Some(f64::NAN),
                    })
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
            Operand::Series(out)
        }
    }
}
