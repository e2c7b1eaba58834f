//! A walk of one queue with `basic.get` on a transactional channel, for the `dlq` and `held` commands.
//!
//! Each message taken is held unacked while the command decides; one it removes is acked in
//! the walk's transaction (with whatever the command published in it), and every message not
//! removed goes back to the queue, in order, when the walk closes.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::{Channel, Connection};

use crate::config::Settings;
use crate::transport::rabbitmq::{self, BrokerError};
use crate::transport::Outbound;

/// Connects and makes sure the topology exists: the jobs exchange and its bindings must, or
/// a job a command publishes would be unroutable, and a transaction (unlike a confirm) does
/// not report returns.
pub async fn connect(settings: &Settings) -> Result<Connection, BrokerError> {
    let conn = rabbitmq::connect(settings).await?;
    let channel = conn
        .create_channel()
        .await
        .map_err(|source| BrokerError::Setup { step: "opening a channel to declare the topology", source })?;
    rabbitmq::declare(&channel, settings).await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(conn)
}

pub struct QueueWalk {
    channel: Channel,
    queue: String,
}

impl QueueWalk {
    /// A transactional channel of its own on `queue`.
    pub async fn open(conn: &Connection, queue: String) -> Result<Self, lapin::Error> {
        let channel = conn.create_channel().await?;
        channel.tx_select().await?;
        Ok(Self { channel, queue })
    }

    /// Messages ready in the queue now.
    pub async fn ready(&self) -> Result<u32, lapin::Error> {
        let opts = QueueDeclareOptions { passive: true, ..Default::default() };
        Ok(self.channel.queue_declare(self.queue.as_str().into(), opts, Default::default()).await?.message_count())
    }

    /// The next message, held unacked until it is removed or the walk closes.
    pub async fn next(&self) -> Result<Option<Delivery>, lapin::Error> {
        let got = self.channel.basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: false }).await?;
        Ok(got.map(|m| m.delivery))
    }

    /// Publishes in the walk's transaction: it is applied with the next removal, or never.
    pub async fn publish(&self, msg: &Outbound, mandatory: bool) -> Result<(), lapin::Error> {
        rabbitmq::publish_in_transaction(&self.channel, msg, mandatory).await
    }

    /// Commits what was published since the last commit, without removing a message.
    pub async fn commit(&self) -> Result<(), lapin::Error> {
        self.channel.tx_commit().await
    }

    /// Removes a message taken by the walk by committing its ack, together with what was
    /// published since the last removal.
    pub async fn remove(&self, d: &Delivery) -> Result<(), lapin::Error> {
        d.ack(BasicAckOptions::default()).await?;
        self.commit().await
    }

    /// Closes the walk; every message not removed goes back to the queue, in order. The
    /// broker returns them asynchronously after the channel closes: waiting (up to 10 s)
    /// until the queue holds `expect_back` again means that when a command exits the queue
    /// is whole, for the next command, an operator's listing and the replicas.
    pub async fn close(self, conn: &Connection, expect_back: u32) {
        let _ = self.channel.close(200, "done".into()).await;
        if let Ok(check) = conn.create_channel().await {
            let opts = QueueDeclareOptions { passive: true, ..Default::default() };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while tokio::time::Instant::now() < deadline {
                match check.queue_declare(self.queue.as_str().into(), opts, Default::default()).await {
                    Ok(q) if q.message_count() < expect_back => tokio::time::sleep(Duration::from_millis(20)).await,
                    _ => break,
                }
            }
            let _ = check.close(200, "done".into()).await;
        }
    }
}
