//! `serve --kafka-*`: builds the Kafka source's options from the settings; its `LogSource` wires it to the engine
//! loop (commits after snapshots) and the store (each incident's partition in its `extra`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender};
use stormwatch_core::telemetry::Eui64;
use stormwatch_kafka::KafkaOptions;
use stormwatch_kafka::changes_topic::{self, changes_topic};
use stormwatch_kafka::group_guard::members_topic;
use stormwatch_kafka::produce::create_topic;
use stormwatch_kafka::replicate::{self, Publisher, incidents_topic};
use stormwatch_kafka::source::{self, UserPartitions};
use stormwatch_service::engine::{EngineInput, LogPosition};
use stormwatch_service::store::Store;
use stormwatch_service::store::sink::{IncidentExtra, IncidentSaved};
use stormwatch_service::{LogSource, ServeConfig};

pub fn options(config: &ServeConfig) -> Option<KafkaOptions> {
    Some(KafkaOptions {
        brokers: config.kafka_brokers.clone()?,
        topic: config.kafka_topic.clone()?,
        group: config.kafka_group.clone(),
        warmup: Duration::from_secs(config.kafka_warmup_s),
        instance: format!("{:016x}", rand::random::<u64>()),
    })
}

pub struct Wiring {
    options: KafkaOptions,
    users: UserPartitions,
    checkpoints: (Sender<Vec<LogPosition>>, Receiver<Vec<LogPosition>>),
}

impl Wiring {
    pub fn new(options: KafkaOptions) -> Wiring {
        Wiring {
            options,
            users: UserPartitions::default(),
            checkpoints: crossbeam::channel::unbounded(),
        }
    }
}

impl LogSource for Wiring {
    fn checkpoints(&self) -> Sender<Vec<LogPosition>> {
        self.checkpoints.0.clone()
    }

    /// `{"topic": T, "partitions": [P...]}`: where the incident's Users live, so whoever reads the store knows
    /// which instance owned it (the group's assignment) and that another may carry it on after a rebalance.
    fn incident_extra(&self) -> IncidentExtra {
        let users = self.users.clone();
        let topic = self.options.topic.clone();
        Box::new(move |record| {
            let map = users
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut partitions: Vec<i32> = std::iter::once(&record.user)
                .chain(&record.users)
                .filter_map(|u| map.get(&Eui64::parse(u)?).copied())
                .collect();
            partitions.sort_unstable();
            partitions.dedup();
            Some(serde_json::json!({ "topic": topic, "partitions": partitions }))
        })
    }

    /// Publishes every incident this instance stores to the incidents topic (created if missing).
    fn replicate(&self) -> Result<IncidentSaved, String> {
        let (brokers, topic) = (&self.options.brokers, &self.options.topic);
        let publisher = (|| -> anyhow::Result<Publisher> {
            create_topic(brokers, &incidents_topic(topic), 1, true)?;
            create_topic(brokers, &changes_topic(topic), 1, true)?;
            create_topic(brokers, &members_topic(topic), 1, false)?;
            Ok(Publisher::new(brokers, topic, &self.options.instance)?)
        })()
        .map_err(|error| format!("{error:#}"))?;
        Ok(Box::new(move |record, extra| {
            publisher.publish(record, extra)
        }))
    }

    /// Starts the consumer, the follower of the other instances' incidents and the change register's replication.
    fn spawn(
        self: Box<Self>,
        engine: Sender<EngineInput>,
        store: Store,
        stop: Arc<AtomicBool>,
        coordination: Arc<stormwatch_core::changes::CoordinationConfig>,
    ) -> std::io::Result<JoinHandle<()>> {
        let (brokers, topic, instance) = (
            self.options.brokers.clone(),
            self.options.topic.clone(),
            self.options.instance.clone(),
        );
        let follower_stop = stop.clone();
        let (changes_store, changes_engine, changes_stop) =
            (store.clone(), engine.clone(), stop.clone());
        let (changes_brokers, changes_topic, changes_instance) =
            (brokers.clone(), topic.clone(), instance.clone());
        std::thread::Builder::new()
            .name("kafka-replicas".into())
            .spawn(move || {
                if let Err(error) =
                    replicate::follow(&brokers, &topic, &instance, &store, &follower_stop)
                {
                    tracing::error!(%error, "not following the other instances' incidents");
                }
            })?;
        std::thread::Builder::new()
            .name("kafka-changes".into())
            .spawn(move || {
                let replicated = changes_topic::run(
                    &changes_brokers,
                    &changes_topic,
                    &changes_instance,
                    &changes_store,
                    &changes_engine,
                    &changes_stop,
                    &coordination,
                );
                if let Err(error) = replicated {
                    tracing::error!(%error, "the change register is not replicated");
                }
            })?;
        std::thread::Builder::new()
            .name("kafka".into())
            .spawn(move || {
                if let Err(error) =
                    source::run(self.options, engine, self.checkpoints.1, self.users, stop)
                {
                    tracing::error!(%error, "the Kafka source stopped");
                }
            })
    }
}
