//! The [`Backend`] of the running daemon: the API's threads never touch the control loop's state;
//! they put a [`Request`] on a bounded queue that the loop polls once per iteration (without ever
//! waiting on it), and wait for its answer. The loop answers each request between two inputs, so an
//! action's effect is in every view read after it.
//!
//! A full queue, or a loop that does not answer within [`DaemonBackend::TIMEOUT`], makes the request
//! fail (the API answers 500 naming which); it never blocks the loop.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

use super::{metrics, Action, Backend, BackendError, View};
use crate::capture::CaptureControl;
use crate::config::Config;
use crate::events::Observe;

/// What the API asks of the control loop.
#[derive(Debug)]
pub enum Ask {
    /// The status JSON (views and metrics are cut from it).
    Status,
    /// Apply a validated configuration, all of it or nothing.
    Apply(Box<Config>),
    /// Run an action.
    Act(Action),
}

/// The control loop's answer.
#[derive(Debug)]
pub enum Answer {
    /// The status JSON.
    Status(Value),
    /// The outcome of `Apply` (with an empty message) or `Act`.
    Done(Result<String, BackendError>),
}

/// One request and where its answer goes.
#[derive(Debug)]
pub struct Request {
    /// What is asked.
    pub ask: Ask,
    reply: SyncSender<Answer>,
}

impl Request {
    /// Sends the answer (never blocks: the reply channel has room for it; a requester that gave up
    /// is not waited for).
    pub fn answer(self, answer: Answer) {
        let _ = self.reply.try_send(answer);
    }
}

/// The API side of the queue.
#[derive(Debug, Clone)]
pub struct DaemonBackend {
    tx: SyncSender<Request>,
    /// The control loop's events and debug conditions (shared, never behind the queue: recording
    /// and reading them do not wait on each other).
    observe: Option<Arc<Observe>>,
    /// The data plane's capture, once the data plane runs.
    capture: Arc<OnceLock<Arc<CaptureControl>>>,
}

/// Requests that may wait for the loop at once.
pub const QUEUE: usize = 64;

/// A backend and the receiving end for the control loop.
pub fn channel() -> (DaemonBackend, Receiver<Request>) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    (DaemonBackend { tx, observe: None, capture: Arc::default() }, rx)
}

impl DaemonBackend {
    /// Serves the events, debug lines and debug conditions of `observe` (the control loop's).
    pub fn with_observe(mut self, observe: Arc<Observe>) -> Self {
        self.observe = Some(observe);
        self
    }

    /// Serves packet capture through `capture` from now on (this backend and its clones).
    pub fn set_capture(&self, capture: Arc<CaptureControl>) {
        let _ = self.capture.set(capture);
    }

    /// How long a request waits for the control loop.
    pub const TIMEOUT: Duration = Duration::from_secs(5);

    fn ask(&self, ask: Ask) -> Result<Answer, BackendError> {
        let (reply, answer) = mpsc::sync_channel(1);
        match self.tx.try_send(Request { ask, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(BackendError::Failed(format!("the control loop has {QUEUE} requests waiting; retry")))
            }
            Err(TrySendError::Disconnected(_)) => return Err(BackendError::Failed("the control loop stopped".into())),
        }
        answer
            .recv_timeout(Self::TIMEOUT)
            .map_err(|_| BackendError::Failed(format!("the control loop did not answer in {:?}", Self::TIMEOUT)))
    }

    fn status(&self) -> Result<Value, BackendError> {
        match self.ask(Ask::Status)? {
            Answer::Status(v) => Ok(v),
            Answer::Done(_) => Err(BackendError::Failed("the control loop answered something else".into())),
        }
    }

    fn done(&self, ask: Ask) -> Result<String, BackendError> {
        match self.ask(ask)? {
            Answer::Done(r) => r,
            Answer::Status(_) => Err(BackendError::Failed("the control loop answered something else".into())),
        }
    }
}

impl Backend for DaemonBackend {
    fn apply(&self, config: &Config) -> Result<(), BackendError> {
        self.done(Ask::Apply(Box::new(config.clone()))).map(|_| ())
    }

    fn view(&self, view: View) -> Result<Value, BackendError> {
        self.status().map(|st| crate::show::view(&st, view))
    }

    fn act(&self, action: &Action) -> Result<String, BackendError> {
        self.done(Ask::Act(action.clone()))
    }

    fn metrics(&self) -> Result<String, BackendError> {
        self.status().map(|st| metrics::render(&st))
    }

    fn observe(&self) -> Option<Arc<Observe>> {
        self.observe.clone()
    }

    fn capture(&self) -> Option<Arc<CaptureControl>> {
        self.capture.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_answered_by_whoever_polls_the_queue() {
        let (backend, rx) = channel();
        let loop_ = std::thread::spawn(move || {
            let req = rx.recv().unwrap();
            assert!(matches!(req.ask, Ask::Act(Action::Drain { enable: true })));
            req.answer(Answer::Done(Ok("drained".into())));
            let req = rx.recv().unwrap();
            req.answer(Answer::Status(serde_json::json!({"hostname": "hub1", "draining": true})));
        });
        assert_eq!(backend.act(&Action::Drain { enable: true }), Ok("drained".into()));
        assert_eq!(backend.view(View::Dmvpn).unwrap()["draining"], true);
        loop_.join().unwrap();
        // Nobody polls any more: a clear error, not a hang.
        assert!(matches!(backend.act(&Action::Drain { enable: false }), Err(BackendError::Failed(_))));
    }
}
