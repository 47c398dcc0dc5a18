//! Event-id deduplication: the bus delivers at least once, so every consumer drops the ids it handled lately.

use std::collections::{HashSet, VecDeque};

/// How many recent event ids are remembered to drop redeliveries.
const DEDUPE_WINDOW: usize = 16_384;

/// The last [`DEDUPE_WINDOW`] event ids a consumer saw, oldest forgotten first.
#[derive(Debug, Default)]
pub struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    /// Records `id`; false when it was seen within the window.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == DEDUPE_WINDOW
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivered_events_are_dropped_within_the_window() {
        let mut seen = Seen::default();
        assert!(seen.first_time("e1"));
        assert!(!seen.first_time("e1"));
        for n in 0..DEDUPE_WINDOW {
            seen.first_time(&format!("x{n}"));
        }
        assert!(seen.first_time("e1"), "forgotten once out of the window");
    }
}
