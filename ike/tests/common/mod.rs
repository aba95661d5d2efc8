//! What the simulations' harnesses read out of an engine's events.

use ike::engine::{Event, Failure, SaPair};

/// The CHILD SA pairs installed, in order.
pub fn pairs(events: &[Event]) -> Vec<&SaPair> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::InstallSaPair(p) => Some(p.as_ref()),
            _ => None,
        })
        .collect()
}

/// The failures raised, in order.
pub fn failures(events: &[Event]) -> Vec<&Failure> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { failure, .. } => Some(failure),
            _ => None,
        })
        .collect()
}
