//! Robust statistics over small samples: quantiles of sorted data, median and MAD.

/// The `q` quantile (0..=1) of ascending `sorted` by nearest rank; 0 when empty.
pub(crate) fn quantile_sorted(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64
}

/// Mean of ascending `sorted` without its top 5 %, and from 3 values on never with its largest,
/// so that no single request decides an interval: one span moves a mean of n values by 1/n, so
/// the smallest intervals (they count from 3 requests) need the trim most.
pub(crate) fn trimmed_mean_sorted(sorted: &[u64]) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let trimmed = (sorted.len() / 20).max(usize::from(sorted.len() >= 3));
    let kept = &sorted[..sorted.len() - trimmed];
    kept.iter().map(|&value| value as f64).sum::<f64>() / kept.len() as f64
}

/// Median of `values` (reordered in place); 0 when empty.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Median and median absolute deviation (unscaled).
pub(crate) fn median_mad(values: &[f64]) -> (f64, f64) {
    let mut scratch = values.to_vec();
    let center = median(&mut scratch);
    for value in scratch.iter_mut() {
        *value = (*value - center).abs();
    }
    (center, median(&mut scratch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_statistics() {
        assert_eq!(quantile_sorted(&[1, 2, 3, 4, 5], 0.5), 3.0);
        assert_eq!(quantile_sorted(&[1, 2, 3, 4, 100], 0.99), 100.0);
        assert_eq!(quantile_sorted(&[], 0.5), 0.0);
        assert_eq!(median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), (3.0, 1.0));
        assert_eq!(median_mad(&[2.0, 4.0]), (3.0, 1.0));
        let mut hundred: Vec<u64> = (1..=100).collect();
        hundred[99] = 1_000_000;
        assert!((trimmed_mean_sorted(&hundred) - 48.0).abs() < 1e-9);
        assert_eq!(trimmed_mean_sorted(&[1, 2, 3, 4, 5, 6, 7, 1000]), 4.0);
        assert_eq!(trimmed_mean_sorted(&[2, 4]), 3.0);
        assert_eq!(trimmed_mean_sorted(&[2, 3, 100]), 2.5);
        assert_eq!(trimmed_mean_sorted(&[2, 2, 3, 3, 250]), 2.5);
    }
}
