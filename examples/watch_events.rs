//! Prints result events as they arrive, one line each (`outcome vendor job_id`), for trying
//! the service by hand: `cargo run --example watch_events -- CONFIG_DIR [COUNT]`.
//!
//! It binds a temporary exclusive queue to the events exchange, so it sees only events
//! published after it started, and takes nothing from the service's own queues.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use provisioner::config::{Settings, Sources};
use provisioner::transport::rabbitmq;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else { anyhow::bail!("usage: watch_events CONFIG_DIR [COUNT]") };
    let count: Option<usize> = args.next().map(|n| n.parse()).transpose()?;
    let settings = Settings::load(&Sources::dir(dir))?;
    let conn = rabbitmq::connect(&settings).await?;
    let ch = conn.create_channel().await?;
    rabbitmq::declare(&ch, &settings).await?;
    let opts = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let queue = ch.queue_declare("".into(), opts, FieldTable::default()).await?;
    let exchange = settings.topology.events_exchange.as_str();
    ch.queue_bind(
        queue.name().as_str().into(),
        exchange.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let mut consumer = ch
        .basic_consume(queue.name().as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    eprintln!("watching {exchange}; Ctrl-C to stop");
    let mut seen = 0;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let event: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
        let d = &event["data"];
        println!(
            "{} {} {}",
            d["outcome"].as_str().unwrap_or("?"),
            d["vendor"].as_str().unwrap_or("?"),
            d["job_id"].as_str().unwrap_or("?")
        );
        delivery.ack(BasicAckOptions::default()).await?;
        seen += 1;
        if count.is_some_and(|c| seen >= c) {
            break;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}
