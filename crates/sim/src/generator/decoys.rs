//! Decoys: change notices near an incident that must not be blamed for it, and notices for changes that went fine.

use rand::Rng;

use super::builder::{Builder, MINUTE};
use stormwatch_core::changes::{Category, ChangeStatus, CorrelatorConfig};
use stormwatch_core::incident::{IncidentKind, Verdict};

impl Builder<'_> {
    /// Changes that look related to the incident but must not be blamed: another (uninvolved, if there is one)
    /// User's change of the category that would fit, and the affected User's own change of a category that fits
    /// none of its incidents.
    pub(super) fn near_decoys(&mut self, incident: usize) {
        let Some(planned) = self.plan.incidents.get(incident) else {
            return;
        };
        let (user, kind, onset) = (
            planned.truth.user.clone(),
            planned.truth.kind,
            planned.truth.onset / 1000,
        );
        let own = self.users.iter().position(|p| p.id.to_string() == user);
        let own_kinds: Vec<IncidentKind> = self
            .plan
            .incidents
            .iter()
            .filter(|i| i.truth.user == user)
            .map(|i| i.truth.kind)
            .collect();
        let fits = match kind {
            IncidentKind::Backlog => Category::Network,
            // Another User's device change would be a real suspect for an alert storm, so not that.
            IncidentKind::RequestStorm | IncidentKind::RejectStorm | IncidentKind::AlertStorm => {
                Category::Application
            }
        };
        // Only Users without a scenario of their own carry decoys: a decoy must never explain a real incident.
        let other = self.uninvolved_user(own.as_slice());
        if let (Some(_), Some(other)) = (own, other) {
            let window = self.decoy_window(onset);
            let title = "Proxy replacement at secondary data centre";
            self.notice(
                Some(other),
                title,
                fits,
                window,
                Some(ChangeStatus::InProgress),
                &[],
            );
        }
        let taken: Vec<usize> = own.into_iter().chain(other).collect();
        if let Some(third) = self.uninvolved_user(&taken) {
            let window = self.decoy_window(onset - 15 * MINUTE);
            let title = "Renew DCCKI client certificates";
            self.notice(
                Some(third),
                title,
                Category::Certificate,
                window,
                Some(ChangeStatus::Completed),
                &[],
            );
        }
        let wrong = [Category::Application, Category::Device, Category::Network]
            .into_iter()
            .find(|category| !own_kinds.iter().any(|k| category_fits(*category, *k)));
        if let (Some(wrong), Some(owner)) = (wrong, own.or(other)) {
            let window = self.decoy_window(onset);
            let title = match wrong {
                Category::Application => "CRM integration release 4.2",
                Category::Device => "Smart meter configuration wave (tariff display)",
                _ => "Load balancer health-check tuning",
            };
            self.notice(
                Some(owner),
                title,
                wrong,
                window,
                Some(ChangeStatus::InProgress),
                &[],
            );
        }
    }

    /// A window open around `onset` that closes within half an hour of it, so that it cannot reach a later slot.
    pub(super) fn decoy_window(&mut self, onset: i64) -> (i64, i64) {
        let start = onset - self.rng.random_range(5..30) * MINUTE;
        let end = onset + self.rng.random_range(5..30) * MINUTE;
        (start, end)
    }

    /// A User no scenario uses, other than `not`.
    pub(super) fn uninvolved_user(&mut self, not: &[usize]) -> Option<usize> {
        let free: Vec<usize> = (0..self.users.len())
            .filter(|i| !not.contains(i) && !self.used[*i])
            .collect();
        (!free.is_empty()).then(|| free[self.rng.random_range(0..free.len())])
    }

    /// Decoys near every incident when `everywhere`, and near unregistered ones always (that scenario is about
    /// them); without incidents, a few notices for changes that went fine.
    pub fn decoys(&mut self, everywhere: bool, end_s: i64) {
        let mut done: Vec<(String, i64)> = Vec::new();
        for index in 0..self.plan.incidents.len() {
            let truth = &self.plan.incidents[index].truth;
            // A request and a reject storm of one User at one time share their decoys.
            let key = (truth.user.clone(), truth.onset);
            if done.contains(&key) {
                continue;
            }
            if everywhere || truth.verdict == Verdict::UnregisteredChangeSuspected {
                done.push(key);
                self.near_decoys(index);
            }
        }
        if everywhere && self.plan.incidents.is_empty() {
            let span = (end_s - self.start_s).max(3600);
            for (title, category) in [
                ("DNS resolver migration", Category::Network),
                ("DCCKI certificate renewal", Category::Certificate),
                ("MDM patch 7.1.3", Category::Application),
            ] {
                let owner = self.other_user(&[]);
                let start = self.start_s + self.rng.random_range(0..span);
                let end = start + self.rng.random_range(20..60) * MINUTE;
                self.notice(
                    Some(owner),
                    title,
                    category,
                    (start, end),
                    Some(ChangeStatus::Completed),
                    &[],
                );
            }
        }
    }
}
/// Whether the correlator's category table lets `category` explain `kind` at all: a decoy must not.
pub(super) fn category_fits(category: Category, kind: IncidentKind) -> bool {
    CorrelatorConfig::default()
        .category_fit
        .plausible(category, kind)
}
