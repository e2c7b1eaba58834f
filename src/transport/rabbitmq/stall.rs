//! The consumer watchdog: notices a consumer the broker stopped feeding without a word.
//!
//! A broker normally says when it drops a consumer (`basic.cancel`, a channel or connection
//! error), and [`super::next_delivery`] acts on that. In a cluster that loses a node, a
//! consumer can also be left registered nowhere while its channel stays open: the worker then
//! waits forever on a queue that fills up. The watchdog tells that apart from a quiet queue by
//! asking the broker: a consumer is stuck when it has room for more, has received nothing for
//! `amqp.consumer_stall_timeout`, and its queue has messages ready on two checks in a row (one
//! check could meet a message on its way to the consumer). Then the session is ended as lost,
//! and the worker reconnects and consumes again.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a consumer tells its watchdog: since when it has been waiting for a delivery, and how
/// many of its deliveries are still unsettled.
#[derive(Debug)]
pub struct Pulse {
    origin: Instant,
    /// Milliseconds after `origin` at which the consumer began waiting; [`NOT_WAITING`] while
    /// it is not waiting.
    waiting_since: AtomicU64,
    unsettled: AtomicUsize,
}

const NOT_WAITING: u64 = u64::MAX;

impl Default for Pulse {
    fn default() -> Self {
        Self { origin: Instant::now(), waiting_since: AtomicU64::new(NOT_WAITING), unsettled: AtomicUsize::new(0) }
    }
}

impl Pulse {
    /// The consumer is about to wait for its next delivery.
    pub fn waiting(&self) {
        let now = self.origin.elapsed().as_millis().min(u128::from(NOT_WAITING - 1)) as u64;
        self.waiting_since.store(now, Ordering::Relaxed);
    }

    /// A delivery arrived; the returned guard counts it unsettled until it is dropped.
    pub fn delivered(self: &Arc<Self>) -> Unsettled {
        self.waiting_since.store(NOT_WAITING, Ordering::Relaxed);
        self.unsettled.fetch_add(1, Ordering::Relaxed);
        Unsettled(self.clone())
    }

    /// How long the consumer has been waiting, if it is.
    fn waited(&self) -> Option<Duration> {
        match self.waiting_since.load(Ordering::Relaxed) {
            NOT_WAITING => None,
            since => Some(self.origin.elapsed().saturating_sub(Duration::from_millis(since))),
        }
    }

    fn waiting_mark(&self) -> u64 {
        self.waiting_since.load(Ordering::Relaxed)
    }
}

/// One delivery not yet settled; dropping it (after the ack, requeue or reject) counts it out.
#[derive(Debug)]
pub struct Unsettled(Arc<Pulse>);

impl Drop for Unsettled {
    fn drop(&mut self) {
        self.0.unsettled.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A consumer under watch.
#[derive(Debug, Clone)]
pub struct Watched {
    pub label: String,
    pub queue: String,
    /// The consumer's prefetch: with this many deliveries unsettled the broker rightly sends
    /// no more.
    pub prefetch: u16,
    pub pulse: Arc<Pulse>,
}

/// One consumer's state between two checks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Suspicion {
    #[default]
    None,
    /// The previous check found it waiting (since this mark) with messages ready.
    Once(u64),
}

/// What one check concludes of one consumer.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Fine,
    /// Worth asking the broker how many messages are ready.
    Ask,
}

/// Whether the consumer is idle long enough, with room, to be worth a question to the broker.
fn worth_asking(waited: Option<Duration>, unsettled: usize, prefetch: u16, stall_timeout: Duration) -> Verdict {
    match waited {
        Some(w) if w >= stall_timeout && (prefetch == 0 || unsettled < usize::from(prefetch)) => Verdict::Ask,
        _ => Verdict::Fine,
    }
}

/// The next suspicion from the broker's answer; `true` when the consumer is stuck (messages
/// ready on two checks in a row within one and the same wait).
fn judge(before: Suspicion, mark: u64, ready: u32) -> (Suspicion, bool) {
    if ready == 0 {
        return (Suspicion::None, false);
    }
    match before {
        Suspicion::Once(m) if m == mark => (before, true),
        _ => (Suspicion::Once(mark), false),
    }
}

/// Watches `consumers` until `stop`; cancels `lost` when one is stuck, or when the broker does
/// not answer a check within `answer_timeout`. The checks use a channel of their own
/// (`channel`): a queue that is gone (404) closes it, and that too is a reason to reconnect,
/// which declares the queue again.
pub async fn watch(
    channel: lapin::Channel,
    consumers: Vec<Watched>,
    stall_timeout: Duration,
    answer_timeout: Duration,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let every = (stall_timeout / 10).max(Duration::from_millis(100));
    let mut suspicions = vec![Suspicion::None; consumers.len()];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for (c, suspicion) in consumers.iter().zip(suspicions.iter_mut()) {
            let waited = c.pulse.waited();
            if worth_asking(waited, c.pulse.unsettled.load(Ordering::Relaxed), c.prefetch, stall_timeout)
                == Verdict::Fine
            {
                *suspicion = Suspicion::None;
                continue;
            }
            let mark = c.pulse.waiting_mark();
            let ready = match ready_count(&channel, &c.queue, answer_timeout).await {
                Ok(ready) => ready,
                Err(why) => {
                    tracing::warn!(consumer = %c.label, queue = %c.queue, reason = %why, "the consumer watchdog could not check the queue; reconnecting");
                    lost.cancel();
                    return;
                }
            };
            let (next, stuck) = judge(*suspicion, mark, ready);
            *suspicion = next;
            if stuck {
                tracing::warn!(
                    consumer = %c.label,
                    queue = %c.queue,
                    ready,
                    waited_s = waited.unwrap_or_default().as_secs(),
                    "the consumer receives nothing while its queue has messages ready; reconnecting"
                );
                lost.cancel();
                return;
            }
        }
    }
}

/// The queue's ready messages, by a passive declare.
async fn ready_count(channel: &lapin::Channel, queue: &str, answer_timeout: Duration) -> Result<u32, String> {
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let asked = channel.queue_declare(queue.into(), options, FieldTable::default());
    match tokio::time::timeout(answer_timeout, asked).await {
        Ok(Ok(q)) => Ok(q.message_count()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {answer_timeout:?} (amqp.setup_timeout)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(60);

    #[test]
    fn only_a_consumer_idle_long_enough_with_room_is_worth_asking_about() {
        assert_eq!(worth_asking(None, 0, 32, STALL), Verdict::Fine, "not waiting: busy with a delivery");
        assert_eq!(worth_asking(Some(Duration::from_secs(59)), 0, 32, STALL), Verdict::Fine, "not long enough");
        assert_eq!(worth_asking(Some(STALL), 0, 32, STALL), Verdict::Ask);
        assert_eq!(
            worth_asking(Some(STALL * 2), 32, 32, STALL),
            Verdict::Fine,
            "a full prefetch window: the broker rightly sends nothing"
        );
        assert_eq!(worth_asking(Some(STALL * 2), 31, 32, STALL), Verdict::Ask);
        assert_eq!(worth_asking(Some(STALL), 500, 0, STALL), Verdict::Ask, "prefetch 0 is unlimited");
    }

    #[test]
    fn stuck_needs_messages_ready_on_two_checks_within_the_same_wait() {
        let (s, stuck) = judge(Suspicion::None, 7, 3);
        assert_eq!((s, stuck), (Suspicion::Once(7), false), "one check could meet a message on its way");
        assert_eq!(judge(s, 7, 5), (Suspicion::Once(7), true));
        assert_eq!(judge(s, 7, 0), (Suspicion::None, false), "the queue emptied: it is being consumed");
        assert_eq!(judge(s, 9, 5), (Suspicion::Once(9), false), "a delivery came between the checks");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pulse_counts_its_wait_and_its_unsettled_deliveries() {
        let pulse = Arc::new(Pulse::default());
        assert_eq!(pulse.waited(), None);
        pulse.waiting();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(pulse.waited().unwrap() >= Duration::from_secs(61));
        let first = pulse.delivered();
        let second = pulse.delivered();
        assert_eq!(pulse.waited(), None, "a delivery ends the wait");
        assert_eq!(pulse.unsettled.load(Ordering::Relaxed), 2);
        drop(first);
        drop(second);
        assert_eq!(pulse.unsettled.load(Ordering::Relaxed), 0);
    }
}
