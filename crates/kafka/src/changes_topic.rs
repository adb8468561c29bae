//! The change register replicated between instances through a compacted `TOPIC.changes` topic (key: change ID,
//! value: the notice as contract JSON). Each instance publishes the notices its own store gained or changed
//! (from the API or the command line, seen by scanning the store every two seconds) and applies the others'
//! to its store and engine, so a change registered on any instance correlates on all. Last writer wins.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KafkaError, side_topic_reader};
use stormwatch_core::changes::{ChangeNotice, CoordinationConfig};
use stormwatch_service::engine::EngineInput;
use stormwatch_service::store::{ChangeFilter, Store};

/// How often the local store is scanned for notices to publish.
const SCAN_EVERY: Duration = Duration::from_secs(2);

pub fn changes_topic(topic: &str) -> String {
    format!("{topic}.changes")
}

#[derive(Serialize, Deserialize)]
struct Replica {
    instance: String,
    notice: Value,
}

/// Runs until `stop`: publishes local notices, applies the other instances' ones.
pub fn run(
    brokers: &str,
    topic: &str,
    instance: &str,
    store: &Store,
    engine: &Sender<EngineInput>,
    stop: &Arc<AtomicBool>,
    coordination: &Arc<CoordinationConfig>,
) -> Result<(), KafkaError> {
    let topic = changes_topic(topic);
    let client = |source| KafkaError::Client {
        brokers: brokers.into(),
        cause: source,
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(client)?;
    let consumer = side_topic_reader(brokers, &topic, "changes", instance, Offset::Beginning)?;
    // What each change looks like as last published or applied, so nothing echoes back and forth.
    let mut known: HashMap<String, String> = HashMap::new();
    let mut last_scan: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        let mut applied = false;
        while let Some(message) = consumer.poll(Duration::from_millis(100)) {
            match message {
                Ok(message) => {
                    applied |= apply(message.payload(), instance, store, coordination, &mut known);
                }
                Err(error) => tracing::debug!(%error, "change replica consumer"),
            }
        }
        if applied {
            match store.load_register() {
                Ok(register) => {
                    if engine.send(EngineInput::SetChanges(register)).is_err() {
                        return Ok(());
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot reload the change register"),
            }
        }
        if last_scan.is_none_or(|at| at.elapsed() >= SCAN_EVERY) {
            last_scan = Some(Instant::now());
            publish_local(&producer, &topic, instance, store, &mut known);
        }
        producer.poll(Duration::ZERO);
    }
    let _ = producer.flush(Duration::from_secs(5));
    Ok(())
}

/// Applies another instance's notice; true when the store changed.
fn apply(
    payload: Option<&[u8]>,
    instance: &str,
    store: &Store,
    coordination: &Arc<CoordinationConfig>,
    known: &mut HashMap<String, String>,
) -> bool {
    let Some(replica) = payload.and_then(|p| serde_json::from_slice::<Replica>(p).ok()) else {
        tracing::warn!("unreadable change replica skipped");
        return false;
    };
    if replica.instance == instance {
        return false;
    }
    let notice = match ChangeNotice::try_from(&replica.notice) {
        Ok(notice) => notice,
        Err(error) => {
            tracing::warn!(%error, "invalid change replica skipped");
            return false;
        }
    };
    let Ok(text) = notice.to_json().map(|v| v.to_string()) else {
        return false;
    };
    if known.get(&notice.id) == Some(&text) {
        return false;
    }
    known.insert(notice.id.clone(), text);
    // Judged here under this instance's settings, as if registered here: each instance keeps its own record.
    let actor = format!("replica:{}", replica.instance);
    match store.upsert_changes(vec![notice], actor, coordination.clone()) {
        Ok(_) => true,
        Err(error) => {
            tracing::error!(%error, "cannot store a replicated change");
            false
        }
    }
}

/// Publishes every local notice not yet published or applied in its current form.
fn publish_local(
    producer: &BaseProducer,
    topic: &str,
    instance: &str,
    store: &Store,
    known: &mut HashMap<String, String>,
) {
    let changes = match store.list_changes(ChangeFilter::default()) {
        Ok(changes) => changes,
        Err(error) => {
            tracing::warn!(%error, "cannot list changes to replicate");
            return;
        }
    };
    for stored in changes {
        let Ok(notice) = stored.notice.to_json() else {
            continue;
        };
        let text = notice.to_string();
        if known.get(&stored.notice.id) == Some(&text) {
            continue;
        }
        let replica = Replica {
            instance: instance.into(),
            notice,
        };
        let Ok(payload) = serde_json::to_vec(&replica) else {
            continue;
        };
        let record = BaseRecord::to(topic)
            .key(stored.notice.id.as_str())
            .payload(&payload);
        match producer.send(record) {
            Ok(()) => {
                known.insert(stored.notice.id.clone(), text);
            }
            Err((error, _)) => {
                tracing::warn!(id = %stored.notice.id, %error, "change not replicated; retried on the next scan")
            }
        }
    }
}
