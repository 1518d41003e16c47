//! Nested-set numbering of a trace's span tree, computed when a block is written so that
//! structural TraceQL (`>>`, `>`, `~`) is arithmetic on three integers instead of a tree walk:
//! `a` is an ancestor of `d` iff `left(a) < left(d) && right(d) < right(a)`; `p` is the parent of
//! `c` iff `parent(c) == left(p)`. A depth-first walk from each root numbers entries and exits
//! with one counter starting at 1. Roots have parent -1; spans not reachable from a root (their
//! parent was never received) keep 0 everywhere, as Tempo does.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NestedSet {
    pub left: i32,
    pub right: i32,
    pub parent: i32,
    pub child_count: i32,
}

/// `spans[i] = (span_id, parent_span_id)` with an empty parent for roots; returns one entry per span.
pub fn nested_set(spans: &[(&[u8], &[u8])]) -> Vec<NestedSet> {
    let mut numbers = vec![NestedSet::default(); spans.len()];
    let mut index_of: crate::FastMap<&[u8], usize> =
        crate::FastMap::with_capacity_and_hasher(spans.len(), Default::default());
    for (i, (span_id, _)) in spans.iter().enumerate() {
        index_of.entry(span_id).or_insert(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, (_, parent)) in spans.iter().enumerate() {
        if parent.is_empty() {
            roots.push(i);
        } else if let Some(parent_index) = index_of.get(parent).copied().filter(|p| *p != i) {
            children[parent_index].push(i);
        }
    }
    let mut counter = 0i32;
    let mut visited = vec![false; spans.len()];
    // Explicit stack: (span, next child position); deep traces must not overflow the thread stack.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in roots {
        counter += 1;
        numbers[root].left = counter;
        numbers[root].parent = -1;
        visited[root] = true;
        stack.push((root, 0));
        while let Some((span, next_child)) = stack.pop() {
            if let Some(&child) = children[span].get(next_child) {
                stack.push((span, next_child + 1));
                if visited[child] {
                    continue; // a cycle in malformed input
                }
                visited[child] = true;
                counter += 1;
                numbers[child].left = counter;
                numbers[child].parent = numbers[span].left;
                numbers[span].child_count += 1;
                stack.push((child, 0));
            } else {
                counter += 1;
                numbers[span].right = counter;
            }
        }
    }
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_a_tree_and_leaves_orphans_at_zero() {
        // root(1) -> a(2) -> c(4); root -> b(3); orphan(5) has a missing parent.
        let ids: Vec<[u8; 1]> = (1..=5).map(|i| [i]).collect();
        let spans: Vec<(&[u8], &[u8])> = vec![
            (&ids[0], &[]),
            (&ids[1], &ids[0]),
            (&ids[2], &ids[0]),
            (&ids[3], &ids[1]),
            (&ids[4], &[9]),
        ];
        let numbers = nested_set(&spans);
        let root = numbers[0];
        assert_eq!(
            (root.left, root.right, root.parent, root.child_count),
            (1, 8, -1, 2)
        );
        let (a, b, c) = (numbers[1], numbers[2], numbers[3]);
        assert_eq!((a.left, a.right, a.parent), (2, 5, 1));
        assert_eq!((c.left, c.right, c.parent), (3, 4, 2));
        assert_eq!((b.left, b.right, b.parent), (6, 7, 1));
        assert!(
            root.left < c.left && c.right < root.right,
            "root is c's ancestor"
        );
        assert_eq!(numbers[4], NestedSet::default());
    }
}
