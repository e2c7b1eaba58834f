//! An in-process broker with the same dispositions as RabbitMQ (publish with routing,
//! ack, requeue, retry tiers, dead-lettering). It backs `demo` and fast pipeline tests;
//! the worker's `run_until_idle` drives it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::headers as h;
use super::{Acknowledge, Inbound, Outbound, PublishError, Publisher};
use crate::config::TopologySettings;
use crate::contract::{Job, VendorKey};

#[derive(Default)]
struct State {
    queues: HashMap<VendorKey, VecDeque<Inbound>>,
    events: Vec<Outbound>,
    dead: Vec<Outbound>,
    /// Removals the safeguard held: they wait for an operator, like an account's held queue.
    held: Vec<Outbound>,
    /// Messages sitting in a retry tier; they count as work still to do.
    parked: usize,
    /// Messages taken from a queue and not yet settled.
    in_flight: usize,
}

/// The in-memory broker. Cloning shares it.
#[derive(Clone)]
pub struct MemoryBroker {
    topology: TopologySettings,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl MemoryBroker {
    pub fn new(topology: TopologySettings) -> Self {
        Self { topology, state: Arc::default(), wake: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory broker lock")
    }

    /// Publishes a job the way a producer would: routing key `create_user.<vendor>`.
    pub fn publish_job(
        &self,
        routing_key: &str,
        body: Vec<u8>,
        message_id: Option<String>,
    ) -> Result<(), PublishError> {
        let msg = Inbound {
            body,
            exchange: self.topology.jobs_exchange.clone(),
            routing_key: routing_key.to_owned(),
            message_id,
            content_type: Some("application/json".into()),
            timestamp: Some(chrono::Utc::now().timestamp().max(0) as u64),
            ..Default::default()
        };
        self.enqueue(msg)
    }

    fn enqueue(&self, msg: Inbound) -> Result<(), PublishError> {
        let vendor = Job::vendor_of_routing_key(&msg.routing_key).ok_or_else(|| PublishError::Unroutable {
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
        })?;
        self.lock().queues.entry(vendor).or_default().push_back(msg);
        self.wake.notify_one();
        Ok(())
    }

    pub fn events(&self) -> Vec<Outbound> {
        self.lock().events.clone()
    }

    pub fn dead_letters(&self) -> Vec<Outbound> {
        self.lock().dead.clone()
    }

    /// What the safeguard held, in the order it was held.
    pub fn held(&self) -> Vec<Outbound> {
        self.lock().held.clone()
    }

    /// The next message of any queue, as a delivery to settle; waits while retries are parked
    /// or deliveries are in flight (either may bring work back). `None` once there is no work
    /// left at all, or on shutdown.
    pub async fn next_delivery(&self, shutdown: &CancellationToken) -> Option<(Inbound, MemoryDelivery)> {
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            if let Some(msg) = self.next() {
                return Some((msg.clone(), MemoryDelivery { broker: self.clone(), msg }));
            }
            if self.idle() {
                return None;
            }
            // Woken by a publish (a retry coming back) or a settled delivery.
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    fn next(&self) -> Option<Inbound> {
        let mut state = self.lock();
        let msg = VendorKey::ALL.into_iter().find_map(|v| state.queues.get_mut(&v).and_then(VecDeque::pop_front));
        state.in_flight += usize::from(msg.is_some());
        msg
    }

    fn idle(&self) -> bool {
        let state = self.lock();
        state.parked == 0 && state.in_flight == 0 && state.queues.values().all(VecDeque::is_empty)
    }
}

impl Publisher for MemoryBroker {
    async fn publish(&self, msg: &Outbound) -> Result<(), PublishError> {
        let t = &self.topology;
        if msg.exchange == t.events_exchange {
            self.lock().events.push(msg.clone());
        } else if msg.exchange == t.dead_exchange {
            self.lock().dead.push(msg.clone());
        } else if msg.kind == super::OutboundKind::Held && msg.exchange.is_empty() {
            // An account's held queue, through the default exchange.
            self.lock().held.push(msg.clone());
        } else if msg.exchange == t.retry_exchange {
            let delay = h::text(&msg.headers, h::RETRY_TIER)
                .and_then(|t| humantime::parse_duration(t).ok())
                .ok_or_else(|| PublishError::Unroutable {
                    exchange: msg.exchange.clone(),
                    routing_key: msg.routing_key.clone(),
                })?;
            self.lock().parked += 1;
            let broker = self.clone();
            let back = Inbound {
                body: msg.body.clone(),
                exchange: t.jobs_exchange.clone(),
                routing_key: msg.routing_key.clone(),
                message_id: msg.message_id.clone(),
                content_type: msg.content_type.clone(),
                timestamp: msg.timestamp,
                redelivered: false,
                headers: msg.headers.clone(),
            };
            // Like a TTL queue dead-lettering back to the jobs exchange.
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = broker.enqueue(back);
                broker.lock().parked -= 1;
                broker.wake.notify_one();
            });
        } else if msg.exchange == t.jobs_exchange {
            let inbound = Inbound {
                body: msg.body.clone(),
                exchange: msg.exchange.clone(),
                routing_key: msg.routing_key.clone(),
                message_id: msg.message_id.clone(),
                content_type: msg.content_type.clone(),
                timestamp: msg.timestamp,
                redelivered: false,
                headers: msg.headers.clone(),
            };
            self.enqueue(inbound)?;
        } else {
            return Err(PublishError::Unroutable {
                exchange: msg.exchange.clone(),
                routing_key: msg.routing_key.clone(),
            });
        }
        Ok(())
    }
}

/// The dead letter of a message whose handler panicked.
fn poisoned(msg: &Inbound) -> Outbound {
    let mut headers = msg.headers.clone();
    h::set_text(&mut headers, h::REASON, "panic");
    h::set_text(&mut headers, h::ORIGINAL_ROUTING_KEY, msg.routing_key.clone());
    msg.forward(super::OutboundKind::DeadLetter, String::new(), headers)
}

/// A delivery taken from a [`MemoryBroker`] queue. It counts as in flight until it is
/// settled or dropped, so the broker is not idle while a handler still holds work.
pub struct MemoryDelivery {
    broker: MemoryBroker,
    msg: Inbound,
}

impl MemoryDelivery {
    /// Dead-letters a message whose handler panicked. There is no delivery limit here to
    /// stop a loop, so it goes straight to the dead letters, as the broker would in the end.
    pub fn poison(self) {
        self.broker.lock().dead.push(poisoned(&self.msg));
    }
}

impl Drop for MemoryDelivery {
    fn drop(&mut self) {
        self.broker.lock().in_flight -= 1;
        self.broker.wake.notify_one();
    }
}

impl Acknowledge for MemoryDelivery {
    async fn ack(self) -> Result<(), String> {
        Ok(())
    }

    async fn requeue(mut self) -> Result<(), String> {
        let mut msg = std::mem::take(&mut self.msg);
        msg.redelivered = true;
        let vendor = Job::vendor_of_routing_key(&msg.routing_key).ok_or("unroutable")?;
        self.broker.lock().queues.entry(vendor).or_default().push_front(msg);
        self.broker.wake.notify_one();
        Ok(())
    }
}
