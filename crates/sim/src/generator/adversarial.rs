//! Scenarios that try to fool the correlator and the engine: decoys that could be blamed, windows that overran,
//! notices registered again with new times, one User's storm backing up everyone's queues, lines exported twice,
//! and a network of 100+ Users with small ones among them.

use rand::Rng;

use super::GenError;
use super::builder::{Builder, MINUTE};
use super::plan::{Effect, Slot};
use stormwatch_core::changes::{Category, ChangeStatus};
use stormwatch_core::incident::{IncidentKind, Verdict};
use stormwatch_core::telemetry::FailureReason;

use super::options::LARGE_NETWORK_USERS;

impl Builder<'_> {
    /// A certificate rotation whose window closed minutes before the TLS failures began (the work overran), and
    /// the same User's earlier network change, closed an hour or two before: the overrun change must still be
    /// blamed, the earlier one ranked below it.
    pub(super) fn overran_window(&mut self, at: i64) -> Result<Slot, GenError> {
        let (user, length) = self.outage(
            "overran_window (>= 3 inbound msg/s)",
            at,
            &[FailureReason::Tls],
        )?;
        let end = at - self.rng.random_range(3..15) * MINUTE;
        let start = end - self.rng.random_range(30..60) * MINUTE;
        let id = self.notice(
            Some(user),
            "DCCKI TLS certificate rotation (overran its window)",
            Category::Certificate,
            (start, end),
            Some(ChangeStatus::Completed),
            &[],
        );
        let decoy_end = at - self.rng.random_range(60..120) * MINUTE;
        self.notice(
            Some(user),
            "DNS resolver migration",
            Category::Network,
            (decoy_end - 30 * MINUTE, decoy_end),
            Some(ChangeStatus::Completed),
            &[],
        );
        self.backlog_caused_by(user, at, id, at + 2 * length);
        Ok(Slot {
            anomaly_s: length,
            recovery_s: length + 10 * MINUTE,
        })
    }

    /// A certificate change registered for yesterday and registered again (same id) with the times it really ran,
    /// around the onset; beside it the same User's cancelled certificate change inside the window and its network
    /// change that closed half an hour before. Only the re-registered times may count.
    pub(super) fn reregistered_notice(&mut self, at: i64) -> Result<Slot, GenError> {
        let (user, length) = self.outage(
            "reregistered_notice (>= 3 inbound msg/s)",
            at,
            &[FailureReason::Tls],
        )?;
        let yesterday = at - 24 * 60 * MINUTE;
        let id = self.notice(
            Some(user),
            "Endpoint certificate replacement",
            Category::Certificate,
            (yesterday, yesterday + 60 * MINUTE),
            None,
            &[],
        );
        let (start, end) = self.window_around(at, 2..10, 30..60);
        if let Some(first) = self.plan.changes.last().cloned() {
            // Registering the same id again updates it: the register must keep the later record.
            let mut again = first;
            again.start_ms = start * 1000;
            again.end_ms = end * 1000;
            again.status = ChangeStatus::InProgress;
            self.plan.changes.push(again);
        }
        let (c_start, c_end) = self.window_around(at, 5..20, 40..80);
        self.notice(
            Some(user),
            "Second certificate chain update",
            Category::Certificate,
            (c_start, c_end),
            Some(ChangeStatus::Cancelled),
            &[],
        );
        let near_end = at - self.rng.random_range(20..40) * MINUTE;
        self.notice(
            Some(user),
            "Firewall rule tidy-up",
            Category::Network,
            (near_end - 30 * MINUTE, near_end),
            Some(ChangeStatus::Completed),
            &[],
        );
        self.backlog_caused_by(user, at, id, at + 2 * length);
        Ok(Slot {
            anomaly_s: length,
            recovery_s: length + 10 * MINUTE,
        })
    }

    /// The firmware alert storm, with other suppliers' device changes beside it that could be blamed through the
    /// same cross-User path: one cancelled inside the window, one that closed hours before, one planned to open
    /// after the onset.
    pub(super) fn device_decoys(&mut self, at: i64) -> Result<Slot, GenError> {
        let slot = self.firmware(at)?;
        for (title, window, status) in [
            (
                "Meter firmware 2.4 rollout",
                self.window_around(at, 5..20, 60..120),
                ChangeStatus::Cancelled,
            ),
            (
                "IHD pairing configuration push",
                {
                    let end = at - self.rng.random_range(180..240) * MINUTE;
                    (end - 60 * MINUTE, end)
                },
                ChangeStatus::Completed,
            ),
            (
                "Comms hub firmware activation wave 4",
                {
                    let start = at + self.rng.random_range(40..60) * MINUTE;
                    (start, start + 60 * MINUTE)
                },
                ChangeStatus::Planned,
            ),
        ] {
            let owner = self.pick("device_decoys (a supplier)", |p| p.is_supplier())?;
            self.notice(
                Some(owner),
                title,
                Category::Device,
                window,
                Some(status),
                &["11.3"],
            );
        }
        Ok(slot)
    }

    /// A User's new MDM storms the DSP, and the DSP's shared delivery capacity saturates: every bulk User's queue
    /// grows for as long as the storm lasts, with no delivery failing. One `*` backlog, blamed on the storming
    /// User's change.
    pub(super) fn shared_capacity(&mut self, at: i64) -> Result<Slot, GenError> {
        let storm = self.mdm(at)?;
        let id = self
            .plan
            .changes
            .last()
            .map(|notice| notice.id.clone())
            .ok_or_else(|| GenError::Plan("shared_capacity: the MDM change is missing".into()))?;
        let from = at + self.rng.random_range(45..90);
        let until = at + storm.anomaly_s;
        let queuing = self
            .users
            .iter()
            .filter(|p| !p.per_message && p.inbound_at(self.shape, from) * 600.0 >= 300.0)
            .count();
        if queuing < 3 || queuing * 10 < self.users.len() * 4 {
            return Err(GenError::Plan(format!(
                "shared_capacity needs at least 3 Users and 40 % of them with traffic enough to queue; only \
                 {queuing} of {}",
                self.users.len()
            )));
        }
        self.plan.effects.push(Effect::Squeeze {
            from,
            until,
            share: 0.3,
        });
        self.incident(
            None,
            IncidentKind::Backlog,
            from,
            Verdict::RegisteredChange,
            Some(id),
        );
        Ok(Slot {
            anomaly_s: storm.anomaly_s,
            recovery_s: storm.recovery_s + storm.anomaly_s,
        })
    }

    /// At-least-once export: 2 % of lines arrive twice, for the whole run, around an ordinary certificate failure.
    /// The engine must count every line and raise nothing from the doubles.
    pub(super) fn duplicate_lines(&mut self, at: i64) -> Result<Slot, GenError> {
        self.plan.duplicates = 0.02;
        self.certificate(at)
    }

    /// 120 Users, small ones among them: a small User's certificate rotation backs up its few messages a second,
    /// and later a mid-sized User's endpoint dies with no notice.
    pub(super) fn large_network(&mut self, at: i64) -> Result<Slot, GenError> {
        if self.users.len() < 100 {
            return Err(GenError::Plan(format!(
                "large_network needs --users {LARGE_NETWORK_USERS} (at least 100)"
            )));
        }
        let shape = self.shape;
        let small = self.pick("large_network (a small User, 0.3-2 inbound msg/s)", |p| {
            (0.3..2.0).contains(&p.inbound_at(shape, at))
        })?;
        let length = self.rng.random_range(20..=30) * MINUTE;
        self.plan.effects.push(Effect::Outage {
            user: small,
            from: at,
            until: at + length,
            stop_at_depth: None,
            reasons: &[FailureReason::Tls],
        });
        let (start, end) = self.window_around(at, 1..6, 30..60);
        let id = self.notice(
            Some(small),
            "DCCKI TLS certificate rotation",
            Category::Certificate,
            (start, end),
            Some(ChangeStatus::InProgress),
            &[],
        );
        self.incident(
            Some(small),
            IncidentKind::Backlog,
            at,
            Verdict::RegisteredChange,
            Some(id),
        );
        self.watch_last(small, at, at + 2 * length);
        let later = at + 5 * MINUTE;
        let (user, other_length) = self.outage(
            "large_network (a User with >= 3 inbound msg/s)",
            later,
            &[FailureReason::Refused],
        )?;
        self.incident(
            Some(user),
            IncidentKind::Backlog,
            later,
            Verdict::UnregisteredChangeSuspected,
            None,
        );
        self.watch_last(user, later, later + 2 * other_length);
        let longest = length.max(other_length + 5 * MINUTE);
        Ok(Slot {
            anomaly_s: longest,
            recovery_s: longest + 10 * MINUTE,
        })
    }
}

#[cfg(test)]
#[path = "adversarial_tests.rs"]
mod tests;
