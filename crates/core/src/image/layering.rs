//! The layer planner: which store paths go into which layer.
//!
//! # The algorithm
//! Given the closure (every path with its NAR size and references), the *roots* (paths nothing
//! else in the closure refers to: the image's contents, usually the application) and a budget
//! of `B` store layers:
//!
//! 1. If the closure has at most `B` paths, every path gets a layer of its own.
//! 2. Otherwise each root gets a layer of its own (unless roots would take more than half the
//!    budget; then they are planned like any other path). Roots are what changes on a rebuild;
//!    keeping them apart means a new application leaves every other layer as it was.
//! 3. The other paths, largest first (ties by path), take a layer of their own while a path is
//!    at least as large as an even share of what is left over the layers that are left: a path
//!    that large would dominate any shared layer anyway.
//! 4. What remains is spread over the remaining layers by "largest first into the lightest
//!    layer" (LPT scheduling), so no shared layer exceeds an even share by more than its
//!    largest path.
//!
//! Nothing in steps 3–4 looks at the roots, so rebuilding a root (a new hash, a new size) moves
//! no other path between layers: those layers keep their digests. Unlike nixpkgs' popularity
//! contest there is no catch-all last layer.
//!
//! Layer order (the image's layers bottom to top): the shared layers, then dedicated
//! dependencies (most referred-to first), then roots — most stable first, so images share the
//! longest possible chain of lower layers.

use crate::format::closure::PathInfo;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

/// Plans at most `budget` (≥ 1) layers for `closure`: each inner list is one layer's paths, sorted;
/// every path of the closure is in exactly one layer.
pub fn plan_layers(closure: &[PathInfo], budget: usize) -> Vec<Vec<String>> {
    assert!(budget >= 1, "a plan needs at least one layer");
    let mut referrers: HashMap<&str, usize> = closure.iter().map(|p| (p.path.as_str(), 0)).collect();
    for info in closure {
        for reference in info.references.iter().filter(|r| **r != info.path) {
            if let Some(count) = referrers.get_mut(reference.as_str()) {
                *count += 1;
            }
        }
    }
    let is_root = |p: &PathInfo| referrers[p.path.as_str()] == 0;
    // Most referred-to first; then by path, for a total order.
    let by_sharing = |a: &&PathInfo, b: &&PathInfo| {
        referrers[b.path.as_str()].cmp(&referrers[a.path.as_str()]).then_with(|| a.path.cmp(&b.path))
    };
    let single = |p: &PathInfo| vec![p.path.clone()];

    if closure.len() <= budget {
        let mut order: Vec<&PathInfo> = closure.iter().collect();
        order.sort_by(|a, b| is_root(a).cmp(&is_root(b)).then_with(|| by_sharing(a, b)));
        return order.into_iter().map(single).collect();
    }

    let roots: Vec<&PathInfo> = closure.iter().filter(|p| is_root(p)).collect();
    let separate_roots = roots.len() * 2 <= budget;
    let (mut dedicated_roots, mut rest): (Vec<&PathInfo>, Vec<&PathInfo>) =
        closure.iter().partition(|p| separate_roots && is_root(p));
    dedicated_roots.sort_by(|a, b| a.path.cmp(&b.path));
    let mut bins = budget - dedicated_roots.len();

    rest.sort_by(|a, b| b.nar_size.cmp(&a.nar_size).then_with(|| a.path.cmp(&b.path)));
    let mut left: u128 = rest.iter().map(|p| p.nar_size as u128).sum();
    let mut dedicated = Vec::new();
    let mut next = 0;
    // Keep at least one layer for everything else.
    while bins > 1 && next < rest.len() && rest[next].nar_size as u128 * bins as u128 >= left {
        left -= rest[next].nar_size as u128;
        dedicated.push(rest[next]);
        next += 1;
        bins -= 1;
    }
    dedicated.sort_by(by_sharing);

    let mut shared: Vec<BTreeSet<String>> = vec![BTreeSet::new(); bins];
    let mut lightest: BinaryHeap<Reverse<(u128, usize)>> = (0..bins).map(|i| Reverse((0, i))).collect();
    for info in &rest[next..] {
        let Reverse((weight, bin)) = lightest.pop().expect("at least one bin");
        shared[bin].insert(info.path.clone());
        lightest.push(Reverse((weight + info.nar_size as u128, bin)));
    }

    shared
        .into_iter()
        .filter(|layer| !layer.is_empty())
        .map(|layer| layer.into_iter().collect())
        .chain(dedicated.into_iter().map(single))
        .chain(dedicated_roots.into_iter().map(single))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, nar_size: u64, references: &[&str]) -> PathInfo {
        PathInfo {
            path: path.into(),
            nar_size,
            references: references.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn all_paths(plan: &[Vec<String>]) -> Vec<String> {
        let mut all: Vec<String> = plan.iter().flatten().cloned().collect();
        all.sort();
        all
    }

    /// A synthetic closure: `libs` libraries (a chain of references, varied sizes) and an app.
    fn closure(libs: usize, app: &str, app_size: u64) -> Vec<PathInfo> {
        let mut paths: Vec<PathInfo> = (0..libs)
            .map(|i| {
                let refs: Vec<String> = if i > 0 { vec![format!("/s/lib{}", i - 1)] } else { vec![] };
                PathInfo {
                    path: format!("/s/lib{i}"),
                    nar_size: 1000 + (i as u64 * 7919) % 50_000,
                    references: refs,
                }
            })
            .collect();
        let app_refs: Vec<&str> = vec!["/s/lib0"];
        paths.push(info(app, app_size, &app_refs));
        paths
    }

    #[test]
    fn small_closures_get_a_layer_per_path_roots_last() {
        let c = vec![info("/s/app", 10, &["/s/lib", "/s/app"]), info("/s/lib", 100, &[])];
        assert_eq!(plan_layers(&c, 5), vec![vec!["/s/lib".to_string()], vec!["/s/app".to_string()]]);
    }

    #[test]
    fn every_path_exactly_once_within_budget() {
        let c = closure(300, "/s/app", 5);
        for budget in [1, 2, 3, 10, 99, 124, 400] {
            let plan = plan_layers(&c, budget);
            assert!(plan.len() <= budget, "{budget}: {} layers", plan.len());
            assert!(plan.iter().all(|l| !l.is_empty()));
            let mut expected: Vec<String> = c.iter().map(|p| p.path.clone()).collect();
            expected.sort();
            assert_eq!(all_paths(&plan), expected, "budget {budget}");
        }
    }

    #[test]
    fn rebuilding_the_app_moves_no_other_path() {
        let before = plan_layers(&closure(300, "/s/aaaa-app", 5_000), 99);
        let after = plan_layers(&closure(300, "/s/zzzz-app", 900_000), 99);
        let without = |plan: &[Vec<String>], app: &str| -> Vec<Vec<String>> {
            plan.iter().filter(|l| l.iter().all(|p| p != app)).cloned().collect()
        };
        assert_eq!(without(&before, "/s/aaaa-app"), without(&after, "/s/zzzz-app"));
        // the app (a root) has a layer of its own
        assert!(before.contains(&vec!["/s/aaaa-app".to_string()]));
        assert!(after.contains(&vec!["/s/zzzz-app".to_string()]));
    }

    #[test]
    fn no_catch_all_layer() {
        let c = closure(1000, "/s/app", 5);
        let plan = plan_layers(&c, 99);
        let size: HashMap<&str, u64> = c.iter().map(|p| (p.path.as_str(), p.nar_size)).collect();
        let total: u64 = c.iter().map(|p| p.nar_size).sum();
        let largest_path = c.iter().map(|p| p.nar_size).max().unwrap();
        for layer in &plan {
            let bytes: u64 = layer.iter().map(|p| size[p.as_str()]).sum();
            // An even share of the bytes plus at most one path more.
            assert!(bytes <= total / 98 + largest_path, "layer of {bytes} bytes (total {total})");
        }
    }

    /// The planner's promises, over closures proptest makes: a random graph of references
    /// (each path refers only to paths before it, as a closure's references cannot cycle but
    /// for a path's reference to itself), random sizes, any budget.
    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::hash::{Hash, Hasher};

        /// A closure of 1 to 300 paths; paths named `/s/pNNN` so that names do not sort by
        /// position.
        fn closures() -> impl Strategy<Value = Vec<PathInfo>> {
            prop::collection::vec(
                (0u64..5_000_000, prop::collection::vec(any::<prop::sample::Index>(), 0..4), any::<bool>()),
                1..300,
            )
            .prop_map(|specs| {
                let name = |i: usize| format!("/s/p{:03}", (i * 7919) % 1000);
                specs
                    .iter()
                    .enumerate()
                    .map(|(i, (size, refs, itself))| {
                        let mut references: Vec<String> =
                            if i == 0 { vec![] } else { refs.iter().map(|r| name(r.index(i))).collect() };
                        if *itself {
                            references.push(name(i));
                        }
                        PathInfo { path: name(i), nar_size: *size, references }
                    })
                    .collect()
            })
        }

        fn roots(closure: &[PathInfo]) -> Vec<&str> {
            closure
                .iter()
                .filter(|p| !closure.iter().any(|o| o.path != p.path && o.references.contains(&p.path)))
                .map(|p| p.path.as_str())
                .collect()
        }

        proptest! {
            #[test]
            fn every_path_in_exactly_one_layer_within_the_budget(closure in closures(), budget in 1usize..130) {
                let plan = plan_layers(&closure, budget);
                prop_assert!(plan.len() <= budget);
                prop_assert!(plan.iter().all(|layer| !layer.is_empty()));
                let mut expected: Vec<String> = closure.iter().map(|p| p.path.clone()).collect();
                expected.sort();
                prop_assert_eq!(all_paths(&plan), expected);
            }

            #[test]
            fn the_order_of_the_closure_does_not_matter(closure in closures(), budget in 1usize..130, seed in any::<u64>()) {
                let mut shuffled = closure.clone();
                // a permutation drawn from the seed: std's hasher has fixed keys
                shuffled.sort_by_key(|p| {
                    let mut hasher = std::hash::DefaultHasher::new();
                    (seed, &p.path).hash(&mut hasher);
                    hasher.finish()
                });
                prop_assert_eq!(plan_layers(&closure, budget), plan_layers(&shuffled, budget));
            }

            /// What the module docs promise: rebuilding a root (a new name, a new size) moves
            /// no other path between layers — where roots get layers of their own (a budget of
            /// at least twice the roots).
            #[test]
            fn rebuilding_a_root_moves_no_other_path(closure in closures(), budget in 1usize..130, size in 0u64..5_000_000) {
                let roots = roots(&closure);
                // a budget with room for the roots' own layers, where the promise holds
                let budget = budget.max(roots.len() * 2);
                let old = roots[0].to_owned();
                let new = "/s/rebuilt".to_owned();
                let rebuilt: Vec<PathInfo> = closure
                    .iter()
                    .map(|p| if p.path == old {
                        PathInfo { path: new.clone(), nar_size: size, references: p.references.iter().map(|r| if *r == old { new.clone() } else { r.clone() }).collect() }
                    } else {
                        p.clone()
                    })
                    .collect();
                let without = |plan: Vec<Vec<String>>, root: &str| -> Vec<Vec<String>> {
                    plan.into_iter().filter(|layer| !layer.iter().any(|p| p == root)).collect()
                };
                let before = plan_layers(&closure, budget);
                let after = plan_layers(&rebuilt, budget);
                prop_assert!(before.contains(&vec![old.clone()]), "a root has a layer of its own");
                prop_assert_eq!(without(before, &old), without(after, &new));
            }
        }
    }
}
