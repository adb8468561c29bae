//! Incidents visible from every instance: each instance publishes every incident it stores to a compacted
//! `TOPIC.incidents` topic (key: the stable incident ID; value: the record and its `extra`), and every instance
//! follows that topic into its own store. Stores are merged by ID: the newest copy wins, except that an open
//! copy never replaces a resolved one (the previous owner's last word on an incident the new owner closed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KafkaError, side_topic_reader};
use stormwatch_core::report::IncidentRecord;
use stormwatch_service::store::Store;

/// The topic incidents of `topic` are replicated through.
pub fn incidents_topic(topic: &str) -> String {
    format!("{topic}.incidents")
}

#[derive(Serialize, Deserialize)]
struct Replica {
    instance: String,
    record: IncidentRecord,
    extra: Option<Value>,
}

/// Publishes this instance's incidents.
pub struct Publisher {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    instance: String,
}

impl Publisher {
    pub fn new(brokers: &str, topic: &str, instance: &str) -> Result<Publisher, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .create()
            .map_err(|source| KafkaError::Client {
                brokers: brokers.into(),
                cause: source,
            })?;
        Ok(Publisher {
            producer,
            topic: incidents_topic(topic),
            instance: instance.into(),
        })
    }

    pub fn publish(&self, record: &IncidentRecord, extra: Option<&Value>) {
        let replica = Replica {
            instance: self.instance.clone(),
            record: record.clone(),
            extra: extra.cloned(),
        };
        let Ok(payload) = serde_json::to_vec(&replica) else {
            return;
        };
        let sent = self.producer.send(
            BaseRecord::to(&self.topic)
                .key(record.id.as_str())
                .payload(&payload),
        );
        if let Err((error, _)) = sent {
            tracing::warn!(id = %record.id, %error, "incident not replicated to the other instances");
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

/// Follows the incidents topic from its start into `store` until `stop`, skipping this instance's own.
pub fn follow(
    brokers: &str,
    topic: &str,
    instance: &str,
    store: &Store,
    stop: &Arc<AtomicBool>,
) -> Result<(), KafkaError> {
    let topic = incidents_topic(topic);
    let consumer = side_topic_reader(brokers, &topic, "replica", instance, Offset::Beginning)?;
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                let Some(replica) = message
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Replica>(p).ok())
                else {
                    tracing::warn!(
                        offset = message.offset(),
                        "unreadable incident replica skipped"
                    );
                    continue;
                };
                if replica.instance != instance {
                    merge(store, replica);
                }
            }
            Some(Err(error)) => tracing::debug!(%error, "incident replica consumer"),
        }
    }
    Ok(())
}

fn merge(store: &Store, replica: Replica) {
    let id = replica.record.id.clone();
    let stale = replica.record.resolved.is_none()
        && store
            .get_incident(id.clone())
            .ok()
            .flatten()
            .is_some_and(|kept| kept.record.resolved.is_some());
    if stale {
        return;
    }
    if let Err(error) = store.save_incident(replica.record, replica.extra) {
        tracing::error!(%id, %error, "cannot store a replicated incident");
    }
}
