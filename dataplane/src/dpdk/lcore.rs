//! The loop a worker lcore runs: poll, account busy and idle cycles, back off when idle (adaptive
//! mode), stop and drain when told.

use core::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{tsc_hz, tsc_now};
use crate::counters::Counter;
use crate::port::Port;
use crate::worker::Worker;

/// How a worker polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Spin whether or not packets come.
    Busy,
    /// After `idle_polls` empty polls in a row, sleep 1 µs, doubling up to `max_sleep` while the queues
    /// stay empty; the first packet resets it.
    Adaptive {
        /// Empty polls before the first sleep.
        idle_polls: u32,
        /// Longest sleep.
        max_sleep: Duration,
    },
}

/// What a worker lcore counts about its own time: one writer, read by management at any time.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct LcoreCounters {
    /// Polls of all its queues.
    pub polls: Counter,
    /// Polls that found work.
    pub busy_polls: Counter,
    /// TSC cycles spent in polls that found work.
    pub busy_cycles: Counter,
    /// TSC cycles spent in empty polls and asleep.
    pub idle_cycles: Counter,
    /// Sleeps taken (adaptive mode).
    pub sleeps: Counter,
}

/// Most polls spent draining the queues after a stop: a port that keeps receiving cannot hold the
/// worker forever.
const DRAIN_POLLS: u32 = 1024;

/// Runs `worker` until `stop` is set, then polls until its queues and inject ring are empty (at most
/// [`DRAIN_POLLS`] polls), so that what was received is sent or dropped before the ports stop.
pub fn run<P: Port>(worker: &mut Worker<P>, stop: &AtomicBool, mode: PollMode, c: &LcoreCounters) {
    let hz = tsc_hz().max(1);
    let clock = |tsc: u64| (u128::from(tsc) * 1_000_000_000 / u128::from(hz)) as u64;
    let mut empty = 0u32;
    let mut sleep = Duration::from_micros(1);
    let mut last = tsc_now();
    while !stop.load(Ordering::Relaxed) {
        let n = worker.poll(clock(last));
        let now = tsc_now();
        c.polls.inc();
        if n > 0 {
            c.busy_polls.inc();
            c.busy_cycles.add(now - last);
            empty = 0;
            sleep = Duration::from_micros(1);
        } else {
            c.idle_cycles.add(now - last);
            empty = empty.saturating_add(1);
        }
        last = now;
        if let PollMode::Adaptive { idle_polls, max_sleep } = mode {
            if empty >= idle_polls {
                std::thread::sleep(sleep);
                c.sleeps.inc();
                sleep = (sleep * 2).min(max_sleep);
                let now = tsc_now();
                c.idle_cycles.add(now - last);
                last = now;
            }
        }
    }
    for _ in 0..DRAIN_POLLS {
        if worker.poll(clock(tsc_now())) == 0 {
            break;
        }
    }
}
