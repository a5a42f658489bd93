//! How much of the machine stowage's parallel work takes: the cores a Nix build was given
//! (`NIX_BUILD_CORES`), or all of the machine's when that is 0 or unset — Nix's own rule for
//! the variable.

use crate::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The variable Nix sets in a builder's environment to the `cores` it may use.
pub const BUILD_CORES: &str = "NIX_BUILD_CORES";

/// The number of threads parallel work may keep busy.
pub fn cores() -> Result<usize> {
    let all = || std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(value) = std::env::var_os(BUILD_CORES) else { return Ok(all()) };
    match value.to_str().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(0) => Ok(all()),
        Some(n) => Ok(n),
        None => Err(Error::Environment {
            var: BUILD_CORES,
            problem: format!("is {value:?}; it must be a number of cores (0 for all of them)"),
        }),
    }
}

/// `f` of every item, worked out on up to `threads` threads; the results in the items' order.
pub fn map_parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, items.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { return done };
                        done.push((i, f(item)));
                    }
                })
            })
            .collect();
        // A panic in `f` is a bug; it goes on as one.
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order() {
        let items: Vec<u64> = (0..100).collect();
        for threads in [0, 1, 3, 200] {
            assert_eq!(
                map_parallel(&items, threads, |i| i * 2),
                items.iter().map(|i| i * 2).collect::<Vec<_>>()
            );
        }
        assert!(map_parallel(&[] as &[u8], 4, |_| ()).is_empty());
    }
}
