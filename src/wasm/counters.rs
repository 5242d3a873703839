//! The rule set's counters as Envoy metrics, counted in the VM and handed to Envoy in batches.
//!
//! Counting is a memory add on the request path; the root context flushes the sums once a second (`on_tick`),
//! so a request costs no metric host calls however many rules and actions it meets. Each worker has its own
//! VM; Envoy adds their flushes into one counter per name.

use std::cell::Cell;

use log::warn;

use super::abi;
use crate::metrics::{self, CounterId};
use crate::ruleset::RuleSet;

/// How often pending counts reach Envoy.
pub const FLUSH_PERIOD_MS: u32 = 1000;

#[derive(Default)]
pub struct Counters {
    /// Envoy's metric id for each counter id; `None` if the proxy would not define it.
    ids: Vec<Option<u32>>,
    /// Counts not yet handed to Envoy.
    pending: Vec<Cell<u64>>,
}

impl Counters {
    /// Defines every counter of `rules` for `plugin` (a label; see [`metrics::plugin_label`]).
    pub fn define(plugin: &str, rules: &RuleSet) -> Self {
        let ids: Vec<Option<u32>> = rules
            .counters()
            .iter()
            .map(|counter| {
                let name = counter.stat_name(plugin);
                abi::define_counter(&name)
                    .map_err(|status| warn!("cannot define metric {name:?} (status {}); not counting it", status.0))
                    .ok()
            })
            .collect();
        let pending = ids.iter().map(|_| Cell::new(0)).collect();
        Counters { ids, pending }
    }

    pub fn add(&self, counter: CounterId) {
        if let Some(cell) = usize::try_from(counter.0).ok().and_then(|i| self.pending.get(i)) {
            cell.set(cell.get().saturating_add(1));
        }
    }

    /// Hands pending counts to Envoy.
    pub fn flush(&self) {
        for (id, cell) in self.ids.iter().zip(&self.pending) {
            let count = cell.take();
            if count == 0 {
                continue;
            }
            if let Some(id) = id {
                if let Err(status) = abi::increment_counter(*id, count) {
                    warn!("cannot update metric {id} (status {}); {count} counts lost", status.0);
                }
            }
        }
    }
}

/// Counts a rejected document at once: there is no rule set to batch it with.
pub fn count_config_error(plugin: &str) {
    let name = metrics::config_errors_stat_name(plugin);
    let counted = abi::define_counter(&name).and_then(|id| abi::increment_counter(id, 1));
    if let Err(status) = counted {
        warn!("cannot count the rejected configuration in {name:?} (status {})", status.0);
    }
}
