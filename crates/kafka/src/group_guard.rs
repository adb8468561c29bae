//! A guard against a consumer group that settles with partitions nobody owns. After a member dies, a broker's
//! coordinator can hand the survivors the previous generation's assignment (tansu 0.6 does: it keeps the
//! generation and answers the leader's new assignment with the old one, so the dead member's partitions stay
//! unowned and no further rebalance comes). Such a broker does not describe groups either, so the instances
//! say themselves what they own: every two seconds each publishes its assigned partitions to `TOPIC.members`
//! and reads the others'. When the live instances together own less than the whole topic for a while after the
//! group last changed, this instance leaves the group and joins again as a new member, which starts a fresh
//! generation.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset};
use serde::{Deserialize, Serialize};

use super::{KafkaError, side_topic_reader};

/// How often an instance says what it owns and looks at what the others own.
const EVERY: Duration = Duration::from_secs(2);
/// An instance not heard from for this long is taken for gone (above the group's 10 s session timeout).
const ALIVE: Duration = Duration::from_secs(12);
/// How long partitions must stay unowned, after the group last changed, before rejoining.
const PATIENCE: Duration = Duration::from_secs(15);

pub fn members_topic(topic: &str) -> String {
    format!("{topic}.members")
}

#[derive(Serialize, Deserialize)]
struct Owned {
    instance: String,
    partitions: Vec<i32>,
}

/// What the instances said they own, and when each was last heard (pure: the caller passes the clock).
#[derive(Default)]
pub struct Membership {
    seen: HashMap<String, (BTreeSet<i32>, Instant)>,
}

impl Membership {
    pub fn heard(&mut self, instance: &str, partitions: BTreeSet<i32>, now: Instant) {
        self.seen.insert(instance.to_owned(), (partitions, now));
    }

    /// Partitions of `0..partitions` that neither this instance (`own`) nor a live other owns.
    pub fn unowned(&self, own: &BTreeSet<i32>, partitions: usize, now: Instant) -> usize {
        let owned: BTreeSet<i32> = self
            .seen
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) < ALIVE)
            .flat_map(|(p, _)| p.iter().copied())
            .chain(own.iter().copied())
            .collect();
        (0..partitions as i32)
            .filter(|p| !owned.contains(p))
            .count()
    }
}

pub struct Guard {
    instance: String,
    topic: String,
    producer: BaseProducer,
    consumer: BaseConsumer,
    membership: Membership,
    last: Instant,
    unowned_since: Option<Instant>,
}

impl Guard {
    pub fn new(brokers: &str, topic: &str, instance: &str) -> Result<Guard, KafkaError> {
        let client = |source| KafkaError::Client {
            brokers: brokers.into(),
            cause: source,
        };
        let members = members_topic(topic);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .map_err(client)?;
        let consumer = side_topic_reader(brokers, &members, "members", instance, Offset::End)?;
        Ok(Guard {
            instance: instance.into(),
            topic: members,
            producer,
            consumer,
            membership: Membership::default(),
            last: Instant::now(),
            unowned_since: None,
        })
    }

    /// Says what this instance owns, reads the others; true when this instance should rejoin the group.
    /// `partitions` is the topic's partition count, `changed` when the group last rebalanced here.
    pub fn tick(&mut self, own: &BTreeSet<i32>, partitions: usize, changed: Instant) -> bool {
        while let Some(Ok(message)) = self.consumer.poll(Duration::ZERO) {
            if let Some(owned) = message
                .payload()
                .and_then(|p| serde_json::from_slice::<Owned>(p).ok())
                && owned.instance != self.instance
            {
                let partitions = owned.partitions.into_iter().collect();
                self.membership
                    .heard(&owned.instance, partitions, Instant::now());
            }
        }
        self.producer.poll(Duration::ZERO);
        if self.last.elapsed() < EVERY {
            return false;
        }
        self.last = Instant::now();
        let said = Owned {
            instance: self.instance.clone(),
            partitions: own.iter().copied().collect(),
        };
        if let Ok(payload) = serde_json::to_vec(&said) {
            let record = BaseRecord::<str, [u8]>::to(&self.topic)
                .key(self.instance.as_str())
                .payload(&payload);
            if let Err((error, _)) = self.producer.send(record) {
                tracing::debug!(%error, "cannot say which partitions this instance owns");
            }
        }
        let now = Instant::now();
        if partitions == 0 || self.membership.unowned(own, partitions, now) == 0 {
            self.unowned_since = None;
            return false;
        }
        let since = *self.unowned_since.get_or_insert(now);
        let settled = now.saturating_duration_since(changed) >= PATIENCE;
        if settled && now.saturating_duration_since(since) >= PATIENCE {
            self.unowned_since = None;
            return true;
        }
        false
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_instances_not_heard_from_lately_count_as_unowned() {
        let t0 = Instant::now();
        let mut membership = Membership::default();
        let own: BTreeSet<i32> = (0..4).collect();
        assert_eq!(membership.unowned(&own, 8, t0), 4);
        membership.heard("b", (4..8).collect(), t0);
        assert_eq!(membership.unowned(&own, 8, t0 + Duration::from_secs(5)), 0);
        assert_eq!(membership.unowned(&own, 8, t0 + ALIVE), 4);
        // Heard again, with a new assignment.
        membership.heard("b", (4..6).collect(), t0 + ALIVE);
        assert_eq!(membership.unowned(&own, 8, t0 + ALIVE), 2);
    }
}
